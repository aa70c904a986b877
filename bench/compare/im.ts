// This project: N nodes of our own (bench/lib.ts's OwnCluster: temp folder, free ports, insecure
// logins, the rate limit lifted), replication at its default R = 2. A send's ack is `sent`, which
// comes once the message is in SQLite on the home node and its replica, in both users' timelines.
import { ImClient, ImError } from '../../src/client/client.ts';
import type { MsgEvent } from '../../src/protocol/frames.ts';
import { OWN_NODE_ARGS, OwnCluster } from '../lib.ts';
import { batchedAcks } from './acks.ts';
import type { Adapter, Hooks, Link, Started, StartCtx, UserCtx } from './systems.ts';

const CONNECT_TIMEOUT_MS = 10_000;
const RETRY_MS = 100;
const MAX_TRIES = 5;
const RETRYABLE = new Set(['unavailable', 'rate_limited']);

async function start(ctx: StartCtx): Promise<Started> {
  const own = await OwnCluster.start(ctx.nodes);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= own.stop().then(() => own.remove()));
  try {
    await own.converged();
  } catch (e) {
    await stop();
    throw e;
  }
  own.phase = 'run';
  return {
    endpoints: own.nodes.map((n) => n.url),
    procs: own.nodes.map((n) => ({ name: n.name, pid: n.proc?.pid ?? -1 })),
    // What the nodes logged at warning level or worse during the load (start-up notes excluded).
    inspect: async () => {
      const p = own.problems.filter((x) => x.phase === 'run');
      return p.length ? { warnings: p.length, first: p.slice(0, 3).map((x) => `${x.node}: ${x.line.slice(0, 300)}`) } : {};
    },
    stop,
  };
}

const userName = (run: string, uid: number) => `c${run}u${uid}`;

async function connect(u: UserCtx, hooks: Hooks): Promise<Link> {
  const c = await ImClient.connect(u.endpoint, { timeoutMs: CONNECT_TIMEOUT_MS });
  await c.login({ user: userName(u.run, u.uid), device: 'bench' }).catch((e: Error) => {
    c.close();
    throw new Error(`login of user ${u.uid} at ${u.endpoint}: ${e.message}`);
  });
  const partner = userName(u.run, u.partner);
  const acks = batchedAcks(u.ackEvery, (seq: number) => c.post({ op: 'ack', seq }));
  let top = 0;
  c.on('msg', (m: MsgEvent) => {
    top = Math.max(top, m.seq);
    // The sender's own connection also gets its message (its timeline's copy): not a delivery,
    // and not counted for the acks, so that im acks as often per message as nats-js does.
    if (m.from !== partner) return;
    hooks.onBody(m.body);
    acks.delivered(top);
  });
  c.on('close', (code, reason) => hooks.onClose(`closed ${code} ${reason}`));
  // A retried send keeps its cid: the node answers a resend it already stored with the same `sent`.
  const send = (body: string, cid: string, tries: number): void => {
    c.send(partner, cid, body).then(
      () => hooks.onAck(),
      (e: Error) => {
        if (e instanceof ImError && RETRYABLE.has(e.code) && tries < MAX_TRIES) setTimeout(() => send(body, cid, tries + 1), RETRY_MS);
        else hooks.onSendError(e instanceof ImError ? e.code : e.message);
      },
    );
  };
  return {
    send: (body, id) => send(body, id, 1),
    close: () => {
      acks.stop();
      c.close();
    },
  };
}

export const im: Adapter = {
  about: `this project, its own nodes (${OWN_NODE_ARGS.join(' ')}), R = 2: \`sent\` once the message is in SQLite on the home node and its replica`,
  start,
  connect,
};
