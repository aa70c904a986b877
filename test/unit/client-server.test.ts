// The client port's server alone (src/http/server.ts), over real loopback sockets: what an open
// WebSocket keeps alive on the node.
import test from 'ava';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket, WebSocketServer } from 'ws';
import { createClientServer } from '../../src/http/server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('an open WebSocket does not keep its upgrade request (headers and all) alive', async (t) => {
  // The request each upgrade was made with, seen without keeping it.
  const requests: WeakRef<IncomingMessage>[] = [];
  const handleUpgrade = WebSocketServer.prototype.handleUpgrade;
  WebSocketServer.prototype.handleUpgrade = function (this: WebSocketServer, req, ...rest) {
    requests.push(new WeakRef(req));
    return handleUpgrade.call(this, req, ...rest);
  };
  t.teardown(() => {
    WebSocketServer.prototype.handleUpgrade = handleUpgrade;
  });
  const accepted: WebSocket[] = [];
  const server = createClientServer({ maxFrame: 65_536 }, {
    routes: { healthz: () => ({ status: 200, body: {} }), cluster: () => ({}), metrics: async () => undefined },
    accept: (ws) => {
      accepted.push(ws);
      ws.on('message', (d) => ws.send(String(d)));
    },
    onError: (e) => t.fail(e.message),
  });
  const port = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close());
  const clients = await Promise.all(Array.from({ length: 3 }, async () => {
    const c = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { 'x-padding': 'x'.repeat(4000) } });
    await once(c, 'open');
    return c;
  }));
  t.is(accepted.length, 3);
  t.is(requests.length, 3);
  for (let i = 0; i < 5 && requests.some((r) => r.deref()); i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  t.deepEqual(requests.map((r) => r.deref() === undefined), [true, true, true], 'every upgrade request was collected');
  // And the connections work.
  const c = clients[0]!;
  c.send('still here');
  t.is(String((await once(c, 'message'))[0]), 'still here');
  for (const x of clients) x.close();
});
