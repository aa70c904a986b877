// The home role: for the users this node owns, it runs the send pipeline (dedup, mid, seq,
// durable append), takes deliveries from other homes, answers timeline queries, and holds
// presence; it pushes to whichever gateways hold the sessions. This file puts the pieces
// together; each piece lives in its own file of this folder.
import { DEDUP_KEY } from '../store/index.ts';
import { UnavailableError } from '../protocol/errors.ts';
import { systemClock } from '../clock/index.ts';
import { Ownership } from './ownership.ts';
import { SenderOrder } from './order.ts';
import { Outbox } from './outbox.ts';
import { GroupSends } from './group-send.ts';
import { SendPipeline } from './pipeline.ts';
import { LOST } from './fences.ts';
import { Reads } from './reads.ts';
import { Sessions } from './sessions.ts';
import type { Home, HomeComponents, SendResult } from './types.ts';
import type { FanItem } from '../protocol/peer.ts';

export type { Home, HomeComponents, Homes, Page, Push, SendResult, Watcher } from './types.ts';
export { toMsg } from './reads.ts';
export { pushCommitted } from './commits.ts';
export { LOST } from './fences.ts';

export function createHome(c: HomeComponents): Home {
  const clock = c.clock ?? systemClock;
  const own = new Ownership(c.owns, c.whyNot, clock);
  const replicated = c.replicated ?? (() => Promise.resolve());
  const readable = c.readable ?? (() => Infinity);
  const everywhere = (durable: Promise<void>, user: string) => durable.then(() => replicated(user));
  const order = new SenderOrder();
  // The outbox keeps handing copies over while a handoff pauses the sender's writes (see OutboxDeps).
  const outbox = new Outbox({ store: c.store, owns: own.serves, deliverRemote: c.deliverRemote, replicated, clock, signal: c.signal, log: c.log });
  const groups = new GroupSends({
    store: c.store, owns: own.serves, nextMid: c.nextMid, midTime: c.midTime, postGroup: c.postGroup, replicated,
    onSent: c.onSent, order, clock, signal: c.signal,
  });
  const pipeline = new SendPipeline({
    store: c.store, owns: own.owns, whyNot: own.whyNot, nextMid: c.nextMid, midTime: c.midTime, everywhere,
    remote: c.deliverRemote !== undefined, replicating: c.replicating, onSent: c.onSent, order, outbox, groups, clock, log: c.log,
  });
  const reads = new Reads({ store: c.store, own, readable, maxReadBytes: c.maxReadBytes ?? 1024 * 1024, onLimit: c.onLimit });
  const sessions = new Sessions({
    store: c.store, presence: c.presence, own, push: c.push, now: c.now, replicated, everywhere, readable,
    maxDevices: c.maxDevices, onLimit: c.onLimit, social: c.social, relayRemote: c.relayRemote, castGroup: c.castGroup, log: c.log,
  });
  const unrouted = (what: string) => () => Promise.reject(new UnavailableError(`${what} the cluster router`));

  return {
    send(from, to, cid, body, _lane, at) {
      if (pipeline.fences.arrives(at)) return Promise.reject(new UnavailableError(LOST));
      // The recipient's home decides whether it takes the message (a block, contacts only), before
      // anything is stored; its recent yeses are cached, so this is mostly synchronous.
      const gate = pipeline.fences.gate(c.social?.gate(from, to, 'dm') ?? true, at);
      // Held here until answered (fences.during): see overtakes.
      return pipeline.fences.during(at, order.inOrder(from, gate, () => new Promise<SendResult>((resolve, reject) => pipeline.enqueue({ kind: 'send', from, to, cid, body, ...(at ? { at } : {}), resolve, reject }))));
    },
    sendGroup(from, group, cid, body, _lane, at) {
      if (pipeline.fences.arrives(at)) return Promise.reject(new UnavailableError(LOST));
      // Behind the sender's direct messages still waiting for their admission, like any send.
      return pipeline.fences.during(at, order.inOrder(from, true, () => new Promise<SendResult>((resolve, reject) => pipeline.enqueue({ kind: 'gsend', from, group, cid, body, ...(at ? { at } : {}), resolve, reject }))));
    },
    lanes: pipeline.fences,
    deliver: (items) => Promise.all(items.map((d) => pipeline.deliver(d))).then(() => undefined),
    deliverFan: (items) => deliverFan(own, pipeline, items),
    relay: (users, frame) => sessions.relay(users, frame),
    readMarks: (conv, users) => reads.readMarks(conv, users),
    serves: (key) => own.owns(key),
    group: unrouted('groups need'),
    typing: unrouted('typing needs'),
    receipts: unrouted('receipts need'),
    login: (s) => sessions.login(s),
    logout: (s) => sessions.logout(s),
    register: (list) => sessions.register(list),
    renew: (gateway, conns) => sessions.renew(gateway, conns),
    dropGateway: (gateway) => sessions.dropGateway(gateway),
    sync: (user, after, limit) => reads.sync(user, after, limit),
    history: (user, conv, before, limit) => reads.history(user, conv, before, limit),
    ack: (user, device, seq) => sessions.ack(user, device, seq),
    read: (s, conv, seq) => sessions.read(s, conv, seq),
    unread: (user) => reads.unread(user),
    presence: (users, viewer) => sessions.presenceOf(users, viewer),
    watch: (w, users) => sessions.watch(w, users),
    unwatch: (w, users) => sessions.unwatch(w, users),
    tick: () => sessions.tick(),
    freeze: (select, ms) => own.freeze(select, ms),
    handOver: (sender, d) => outbox.handOver(sender, d),
    replayOutbox: () => outbox.replay(),
  };
}

/** Home.deliverFan: each item's copies for the members homed here; per item, the users not taken. */
async function deliverFan(own: Ownership, pipeline: SendPipeline, items: FanItem[]): Promise<string[][]> {
  const failed: string[][] = items.map(() => []);
  const waits: Promise<void>[] = [];
  items.forEach((it, i) => {
    const { users, cid, ...msg } = it;
    for (const user of users) {
      if (!own.owns(user)) {
        failed[i]!.push(user);
        continue;
      }
      const dkey = user === it.from && cid !== undefined ? DEDUP_KEY.cid(cid) : undefined;
      waits.push(pipeline.deliver({ ...msg, user }, dkey).catch((e: Error) => {
        if (e.name !== 'UnavailableError') throw e;
        failed[i]!.push(user);
      }));
    }
  });
  await Promise.all(waits);
  return failed;
}
