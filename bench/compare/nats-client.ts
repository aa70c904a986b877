// One user's NATS connection for nats-js and nats-core. Send: a JetStream publish to the partner's
// subject with Nats-Msg-Id (the stream drops a repeat within its duplicate window, as our nodes
// drop a repeated cid); the window's ack is the PubAck, which the stream leader sends once the
// stream's Raft group has the message on a quorum (R = 2: both replicas). Receive: 'stream', a
// durable push consumer per user (file, replicated like the stream, ack-all, acked in batches as
// im's messages are: acks.ts); 'core', a plain subscription to the user's subject (the live
// message: the stream still stores it, but nothing reads it back).
import { Buffer } from 'node:buffer';
import { connect as natsConnect, consumerOpts, createInbox, headers } from 'nats';
import type { JsMsg, Msg, NatsConnection } from 'nats';
import { batchedAcks } from './acks.ts';
import type { Hooks, Link, UserCtx } from './systems.ts';

export type Delivery = 'stream' | 'core';

export const STREAM = 'IM';
export const subjectOf = (uid: number) => `u.${uid}`;

/** A publish with no PubAck after this long is sent again (same Nats-Msg-Id). */
const PUBACK_TIMEOUT_MS = 30_000;
const SWEEP_MS = 1000;
/** Creating a replicated durable consumer is a Raft proposal; with hundreds at once on a busy
 * machine, nats.js's default of 5 s is too short. */
const JS_API_TIMEOUT_MS = 30_000;
const MAX_TRIES = 5;

const dec = new TextDecoder();
const enc = new TextEncoder();

type Pending = { at: number; tries: number; body: string; id: string };
/** Per connection: publishes awaiting their PubAck. */
type Conn = { pending: Map<number, Pending>; resend(p: Pending): void };

const conns = new Set<Conn>();
let sweeper: ReturnType<typeof setInterval> | undefined;

/** One timer for every connection of the worker re-sends the publishes never answered. */
function sweep(): void {
  const old = Date.now() - PUBACK_TIMEOUT_MS;
  for (const c of conns) {
    for (const [t, p] of c.pending) {
      if (p.at >= old) continue;
      c.pending.delete(t);
      c.resend(p);
    }
  }
}

/** A PubAck is JSON; a failure is a status header (503: no stream leader) or an `error` member. */
function pubAckError(m: Msg): string | undefined {
  if (m.headers?.hasError) return `status ${m.headers.code} ${m.headers.description}`;
  if (m.data.length === 0) return 'empty PubAck';
  if (Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length).includes('"error"')) return dec.decode(m.data);
  return undefined;
}

/** Subscribes the user to its messages; returns what stops its acks. */
async function subscribe(nc: NatsConnection, u: UserCtx, hooks: Hooks, delivery: Delivery): Promise<() => void> {
  const me = subjectOf(u.uid);
  if (delivery === 'core') {
    nc.subscribe(me, { callback: (err, m) => (err ? hooks.onError(err.message) : hooks.onBody(dec.decode(m.data))) });
    return () => {};
  }
  const o = consumerOpts();
  o.bindStream(STREAM);
  o.durable(`d${u.uid}`);
  o.deliverTo(createInbox());
  o.deliverAll();
  o.ackAll();
  o.manualAck();
  o.maxAckPending(10_000);
  const acks = batchedAcks(u.ackEvery, (m: JsMsg) => m.ack());
  o.callback((err, m) => {
    if (err) return hooks.onError(err.message);
    if (!m) return;
    hooks.onBody(dec.decode(m.data));
    acks.delivered(m);
  });
  await nc.jetstream({ timeout: JS_API_TIMEOUT_MS }).subscribe(me, o);
  return () => acks.stop();
}

export async function connectNats(u: UserCtx, hooks: Hooks, delivery: Delivery): Promise<Link> {
  const nc = await natsConnect({
    servers: u.endpoint, name: `c${u.run}u${u.uid}`, reconnect: false, noRandomize: true, ignoreClusterUpdates: true,
    pingInterval: 120_000, noAsyncTraces: true,
  });
  void nc.closed().then((e) => hooks.onClose(e ? e.message : 'closed'));
  const to = subjectOf(u.partner);
  // Publish with a reply subject and match the PubAck by token, as the Go client's PublishAsync
  // does: nats.js's js.publish() makes a promise, a timer and error objects per message, and a
  // load generator built on it measures mostly itself.
  const inbox = createInbox();
  let token = 0;
  const publish = (p: Pending) => {
    const t = token++;
    p.at = Date.now();
    conn.pending.set(t, p);
    const h = headers();
    h.set('Nats-Msg-Id', p.id);
    nc.publish(to, enc.encode(p.body), { reply: `${inbox}.${t}`, headers: h });
  };
  const retry = (p: Pending, why: string) => {
    if (p.tries >= MAX_TRIES) return hooks.onSendError(why);
    p.tries++;
    publish(p);
  };
  const conn: Conn = { pending: new Map(), resend: (p) => retry(p, 'no PubAck') };
  nc.subscribe(`${inbox}.*`, {
    callback: (err, m) => {
      if (err) return hooks.onError(err.message);
      const t = Number(m.subject.slice(inbox.length + 1));
      const p = conn.pending.get(t);
      if (!p) return;
      conn.pending.delete(t);
      const bad = pubAckError(m);
      if (bad) retry(p, bad);
      else hooks.onAck();
    },
  });
  const stopAcks = await subscribe(nc, u, hooks, delivery);
  await nc.flush();
  conns.add(conn);
  sweeper ??= setInterval(sweep, SWEEP_MS);
  return {
    send: (body, id) => publish({ at: 0, tries: 1, body, id }),
    close: () => {
      stopAcks();
      conns.delete(conn);
      if (!conns.size) {
        clearInterval(sweeper);
        sweeper = undefined;
      }
      void nc.close();
    },
  };
}
