// One Socket.IO 4 node for the comparison (started by sio-redis.ts as its own process):
//   node bench/compare/sio-node.ts <port> <redis url>
// A user joins the room named after its id; 'm' (to, body, ack) emits the body to room `to` through
// the Redis adapter (published to every node) and acks at once: nothing is stored anywhere.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const [portArg, redisUrl] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || !redisUrl) {
  process.stderr.write('usage: node bench/compare/sio-node.ts <port> <redis url>\n');
  process.exit(2);
}

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
pub.on('error', (e: Error) => process.stderr.write(`redis pub: ${e.message}\n`));
sub.on('error', (e: Error) => process.stderr.write(`redis sub: ${e.message}\n`));
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false, adapter: createAdapter(pub, sub) });
io.on('connection', (s) => {
  void s.join(String(s.handshake.auth.uid));
  s.on('m', (to: string, body: string, ack?: () => void) => {
    io.to(to).emit('m', body);
    if (typeof ack === 'function') ack();
  });
});
http.listen(port, '127.0.0.1', () => {
  // The adapter subscribes to its Redis channels asynchronously; give it a moment before saying ready.
  setTimeout(() => process.stdout.write('ready\n'), 300);
});
process.on('SIGTERM', () => {
  void io.close();
  process.exit(0);
});
