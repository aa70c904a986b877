// The SDK's node list (src/client/nodes.ts): the order a session tries nodes in, a goaway's nodes
// first, and a list the app replaces (setUrls) when it knows nodes are gone; then a session
// against a fake node that reconnects only to the URLs it was last given.
import test from 'ava';
import { NodeList } from '../../src/client/nodes.ts';
import { ImSession } from '../../src/client/index.ts';
import { fakeNode, until } from '../helpers/fake-node.ts';

const list = (urls: string[]) => new NodeList(urls, { start: 'first', random: () => 0, backoffMs: { min: 1, max: 5 } });
const take = (n: NodeList, count: number) => Array.from({ length: count }, () => n.next());

test('the URLs are tried in turn from the first; a goaway\'s nodes go first', (t) => {
  const n = list(['a', 'b', 'c']);
  t.deepEqual(take(n, 4), ['a', 'b', 'c', 'a']);
  n.goaway(['c', 'd', 'a'], 'a');
  t.deepEqual(take(n, 2).sort(), ['c', 'd'], 'the named ones (in random order) but the node that said goaway');
  t.is(n.next(), 'b', 'then the rotation, on from where it was');
  t.deepEqual(n.urls, ['a', 'b', 'c', 'd']);
});

test('set replaces the URLs and goes on from the one last tried, or from its place when it is gone', (t) => {
  const n = list(['a', 'b', 'c', 'd']);
  t.deepEqual(take(n, 2), ['a', 'b']);
  n.set(['d', 'b', 'e']);
  t.deepEqual(take(n, 3), ['e', 'd', 'b'], 'after b, where it is now');
  t.deepEqual(n.urls, ['d', 'b', 'e']);
  n.set(['x', 'y', 'z', 'd']); // b, the last tried, is gone: the URL now at its place comes next
  t.deepEqual(take(n, 2), ['y', 'z']);
  n.set(['p']);
  t.deepEqual(take(n, 2), ['p', 'p']);
});

test('set drops a goaway\'s nodes not in the new list, keeps the others first, and refuses an empty list', (t) => {
  const n = list(['a', 'b']);
  n.next();
  n.goaway(['b', 'c'], 'a');
  n.set(['a', 'b']);
  t.deepEqual(take(n, 2), ['b', 'b'], 'c is not tried; b first, as the goaway asked, then the rotation');
  t.throws(() => n.set([]), { message: /at least one/ });
  t.deepEqual(n.urls, ['a', 'b']);
});

test('a session given new URLs reconnects only among them; the current connection stays until it goes', async (t) => {
  const node = fakeNode((f) => {
    if (f.op === 'login') return [{ op: 'welcome', id: f.id, user: 'alice', device: 'd', node: 'n1', seq: 0, acked: 0 }];
    if (f.op === 'ping') return [{ op: 'pong', id: f.id, ts: 1 }];
  });
  const s = new ImSession({
    urls: ['ws://a/ws', 'ws://b/ws'], user: 'alice', start: 'first', WebSocket: node.WebSocket, backoffMs: { min: 1, max: 5 },
  });
  t.teardown(() => s.close());
  await s.ready();
  s.setUrls(['ws://c/ws', 'ws://d/ws']);
  t.is(s.state.url, 'ws://a/ws');
  t.deepEqual(s.urls, ['ws://c/ws', 'ws://d/ws']);
  for (let i = 1; i <= 3; i++) {
    node.sockets.at(-1)!.drop();
    await until(() => node.sockets.length === i + 1 && s.state.state === 'live', `reconnect ${i}`);
  }
  t.deepEqual(node.sockets.map((k) => k.url), ['ws://a/ws', 'ws://c/ws', 'ws://d/ws', 'ws://c/ws']);
});
