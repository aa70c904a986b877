// The client SDK in a few lines: alice and bob each keep a session to the cluster, alice sends,
// bob reads it live, then both look at the conversation. Against the development cluster of
// `npm start` (insecure mode: logins by user id):
//
//   node examples/hello.ts                      # ws://127.0.0.1:7001/ws
//   node examples/hello.ts ws://127.0.0.1:7002/ws ws://127.0.0.1:7003/ws
//
// In a project that installed the package, import from '@imring/client' instead.
import { ImSession, dmConv } from '../src/client/index.ts';

const urls = process.argv.length > 2 ? process.argv.slice(2) : ['ws://127.0.0.1:7001/ws'];
const alice = new ImSession({ urls, user: 'alice', device: 'example' });
const bob = new ImSession({ urls, user: 'bob', device: 'example', since: 'latest' });

alice.on('state', (s) => console.log(`alice: ${s.state}${s.node ? ` on ${s.node}` : ''}`));
const got = new Promise<void>((done) => {
  bob.on('message', (m) => {
    console.log(`bob got [seq ${m.seq}] ${m.from}: ${m.body}`);
    if (m.from === 'alice') done();
  });
});

await Promise.all([alice.ready(), bob.ready()]);
// Resolves once the message is durable in both timelines; across a node failure it is resent
// with the same cid and still stored once.
const sent = await alice.sendTo('bob', `hello bob, it is ${new Date().toLocaleTimeString()}`);
console.log(`alice: sent as seq ${sent.seq} (mid ${sent.mid})`);
await got;

const page = await bob.history(dmConv('alice', 'bob'), { limit: 3 });
console.log(`bob: the last ${page.msgs.length} messages with alice, newest first:`, page.msgs.map((m) => m.body));
await bob.read(dmConv('alice', 'bob'), bob.seq);
console.log('bob: unread now', (await bob.unread()).total);

alice.close();
bob.close();
