// Changes by users homed here: queued behind the other side's admission, batched per user,
// appended to the user's social log with the outbox copies for the other sides' homes, and,
// once durable on every copy, told to whoever they change something for.
import { applyOp, counted, counts, emptyPair, friends, listed, profileOf, visible, wire } from '../contacts/index.ts';
import type { Pair, SocialEvent, SocialState } from '../contacts/index.ts';
import { dmConv } from '../protocol/frames.ts';
import type { Delivery } from '../protocol/peer.ts';
import { ClientError, UnavailableError, errorOf } from '../protocol/errors.ts';
import { KeyedBatcher } from '../channel/batcher.ts';
import type { Gates } from './gate.ts';
import { snap } from './presence.ts';
import type { PresenceFilter, Was } from './presence.ts';
import type { Reads } from './reads.ts';
import type { States } from './states.ts';
import { socialKey } from './types.ts';
import type { SocialComponents, SocialReq } from './types.ts';

/** What the writes use of the social role's components. */
export type WriteDeps = Pick<SocialComponents,
  'store' | 'owns' | 'replicated' | 'nextMid' | 'midTime' | 'handOver' | 'lookup' | 'relay' | 'admitAt' | 'limits' | 'log'>;

/** What a batch of changes comes to, checked against the state before it. */
type Plan = {
  events: SocialEvent[];
  /** Per change: undefined (done, or no change) or its refusal. */
  out: (undefined | Error)[];
  /** Each changed pair as it was before the batch. */
  first: Map<string, Pair>;
  /** The users whose labels changed. */
  lists: Set<string>;
  profile: boolean;
  status: boolean;
  privacy: boolean;
};

export type Parts = { states: States; gates: Gates; presence: PresenceFilter; reads: Reads };

/** Keeps `p`, settled either way, as `key`'s newest in `map` until it settles. */
function newest(map: Map<string, Promise<void>>, key: string, p: Promise<unknown>): void {
  const settled = p.then(() => undefined, () => undefined);
  map.set(key, settled);
  void settled.then(() => {
    if (map.get(key) === settled) map.delete(key);
  });
}

export class Writes {
  #d: WriteDeps;
  #p: Parts;
  #batcher: KeyedBatcher<SocialReq, undefined>;
  // Per user, the newest change still waiting for the other side's admission: later changes of
  // the user wait behind it, so that changes keep the order they were made in.
  #admitting = new Map<string, Promise<void>>();
  // Per user and other user, the newest change of that relation (settled either way), so that a
  // request reads the relation's epoch only after the user's own earlier changes of it (a removal
  // just before) are in; requests to many users at once still go together.
  #tail = new Map<string, Promise<void>>();

  constructor(d: WriteDeps, parts: Parts) {
    this.#d = d;
    this.#p = parts;
    this.#batcher = new KeyedBatcher<SocialReq, undefined>((user, reqs) => this.#runBatch(user, reqs), 500);
  }

  /** A change by `user`: resolves once it is durable on every copy of the log. */
  op(user: string, req: SocialReq): Promise<void> {
    let gate: Promise<void> | undefined;
    if (req.op === 'contact_request' || req.op === 'follow') {
      if (req.user === user) return Promise.reject(new ClientError('bad_request', 'that is yourself'));
      gate = this.#admission(user, req.user, req.op === 'follow' ? 'follow' : 'request');
    } else if ('user' in req && req.user === user) {
      return Promise.reject(new ClientError('bad_request', 'that is yourself'));
    }
    const prev = this.#admitting.get(user);
    const out = !gate && !prev ? this.#batcher.add(user, req) : this.#afterAdmission(user, req, Promise.all([prev, gate]));
    if ('user' in req) newest(this.#tail, `${user}\0${req.user}`, out);
    return out;
  }

  /** The other side decides whether it takes a request or a follow: a block, or its pending
   * requests full. A request also shows the relation's epoch as this home holds it once the
   * user's earlier changes of that relation are in (the other side checks it: Reads.admit). */
  #admission(user: string, other: string, kind: 'request' | 'follow'): Promise<void> {
    const epoch = kind === 'follow' ? Promise.resolve(undefined)
      : (this.#tail.get(`${user}\0${other}`) ?? Promise.resolve()).then(() => this.#p.states.state(user)).then((s) => s.pairs.get(other)?.fe ?? 0);
    return epoch.then((e) => this.#d.admitAt(other, user, kind, e)).then((no) => {
      if (no) throw errorOf(no.code, no.message);
    });
  }

  /** Into the batch once admitted, and once the user's earlier changes waiting for theirs are. */
  #afterAdmission(user: string, req: SocialReq, ready: Promise<unknown>): Promise<void> {
    const out = ready.then(() => this.#batcher.add(user, req));
    newest(this.#admitting, user, ready);
    return out;
  }

  /** The changes of one user queued meanwhile, applied in order to the state in memory and
   * written with one append: a client following 2,000 users at once waits for a few commits, not
   * for 2,000 in a row. Each change is checked against the state its predecessors left. */
  async #runBatch(user: string, reqs: SocialReq[]): Promise<(undefined | Error)[]> {
    const s = await this.#p.states.load(user);
    const was: Was = { s: snap(s), online: this.#d.lookup(user).online };
    const plan = this.#plan(s, reqs);
    if (plan.events.length === 0) return this.#answered(user, plan.out);
    let s2: SocialState;
    try {
      s2 = await this.#write(user, plan.events, new Set(plan.first.keys()));
    } catch (e) {
      return plan.out.map((r) => r ?? (e as Error));
    }
    await this.#tell(user, was, s2, plan);
    return plan.out;
  }

  /** Refusals and no-ops answer from the state alone: only once every copy holds that state, as
   * reads of timelines stop short of unconfirmed entries. A change this home committed whose
   * replication failed (its answer `unavailable`) is in the state, yet a crash here could take it
   * back: a retry must not hear `not_found` for a removal that then never happened. */
  async #answered(user: string, out: (undefined | Error)[]): Promise<(undefined | Error)[]> {
    try {
      await this.#d.replicated(socialKey(user));
    } catch (e) {
      return out.map(() => e as Error);
    }
    return out;
  }

  #plan(s: SocialState, reqs: SocialReq[]): Plan {
    const plan: Plan = { events: [], out: [], first: new Map(), lists: new Set(), profile: false, status: false, privacy: false };
    const { events, out, first } = plan;
    const pairs = new Map<string, Pair>();
    const pair = (u: string) => pairs.get(u) ?? s.pairs.get(u) ?? emptyPair();
    let count = counts(s).contacts;
    for (const req of reqs) {
      switch (req.op) {
        case 'profile_set':
          events.push({ k: 'profile', p: req.profile });
          plan.profile = true;
          out.push(undefined);
          continue;
        case 'status':
          events.push({ k: 'status', s: req.status, x: req.text ?? '' });
          plan.status = true;
          out.push(undefined);
          continue;
        case 'privacy': {
          const { op: _op, id: _id, ...p } = req;
          events.push({ k: 'privacy', p });
          plan.privacy = true;
          out.push(undefined);
          continue;
        }
        case 'contact_lists': {
          const p = pair(req.user);
          if (!listed(p)) {
            out.push(new ClientError('not_found', `${req.user} is not among your contacts`));
            continue;
          }
          events.push({ k: 'lists', u: req.user, l: req.lists });
          pairs.set(req.user, { ...p, lists: req.lists });
          plan.lists.add(req.user);
          out.push(undefined);
          continue;
        }
        default: {
          const other = req.user;
          const before = pair(other);
          const next = applyOp(before, req.op, other, req.op === 'contact_request' ? (req.text ?? '') : '', count, this.#d.limits);
          if (next === 'same') {
            out.push(undefined);
            continue;
          }
          if ('code' in next) {
            out.push(errorOf(next.code, next.message));
            continue;
          }
          count += Number(counted(next)) - Number(counted(before));
          if (!first.has(other)) first.set(other, s.pairs.get(other) ?? emptyPair());
          pairs.set(other, next);
          events.push({ k: 'pair', u: other, p: wire(next) });
          out.push(undefined);
        }
      }
    }
    return plan;
  }

  /** Appends events to the user's log, and the changed pairs for the other sides' homes (through
   * the outbox), and resolves once they are durable on every copy, with the state that folds
   * them in. */
  async #write(user: string, events: SocialEvent[], copies: Set<string>): Promise<SocialState> {
    const { store, log } = this.#d;
    const key = socialKey(user);
    if (!this.#d.owns(key)) throw new UnavailableError(`${user} is moving to another node`);
    // The copy for the other side is the last `pair` entry for that user itself (same mid, body,
    // sender and time, as a direct message's copy is the sender's entry): the outbox keeps a row
    // only while the sender's log has an entry of that mid, and replication pages send entries
    // of one mid as one message.
    const lastPair = new Map<string, number>();
    events.forEach((ev, i) => ev.k === 'pair' && lastPair.set(ev.u, i));
    const ds: Delivery[] = [];
    const items = events.map((ev, i) => {
      const mid = this.#d.nextMid();
      const other = 'u' in ev ? ev.u : user;
      const ts = this.#d.midTime(mid);
      const body = JSON.stringify(ev);
      if (ev.k === 'pair' && lastPair.get(ev.u) === i && copies.has(ev.u)) {
        ds.push({ user: socialKey(ev.u), mid, conv: dmConv(user, ev.u), from: user, to: ev.u, body, ts });
      }
      return { user: key, mid, conv: dmConv(user, other), from: user, to: other, body, ts, dkey: `e:${mid}` };
    });
    const { entries, durable } = store.append(items, ds.map((d) => ({ user: key, mid: d.mid, dest: d.user, item: d })));
    await durable;
    await this.#d.replicated(key);
    for (const d of ds) this.#d.handOver(key, d).catch((e: Error) => log.info({ user, to: d.to, err: e.message }, 'contact change not handed over yet; the outbox retries'));
    // Folded in by `committed` unless the cache was dropped meanwhile (a ring change).
    const fresh = this.#p.states.cached(user);
    return fresh && fresh.seq >= entries[entries.length - 1]!.seq ? fresh : this.#p.states.load(user);
  }

  /** What the changes mean for others, once they are durable. */
  async #tell(user: string, was: Was, s2: SocialState, plan: Plan): Promise<void> {
    const { first } = plan;
    const stricter = [...first].some(([u, b]) => {
      const a = s2.pairs.get(u) ?? emptyPair();
      return (!b.bm.on && a.bm.on) || (friends(b) && !friends(a) && s2.privacy.dm === 'contacts');
    }) || (was.s.privacy.dm === 'everyone' && s2.privacy.dm === 'contacts');
    if (stricter) await this.#p.gates.revokeAll([user]);
    if (plan.status || plan.privacy || first.size) {
      const changed = new Set(first.keys());
      this.#p.presence.presenceTo(user, s2, (w) => plan.status || plan.privacy || changed.has(w.user ?? ''), { s: { ...was.s, pairs: new Map([...was.s.pairs, ...first]) }, online: was.online });
    }
    if (plan.profile) {
      const audience = [user];
      for (const [u, p] of s2.pairs) if ((friends(p) || p.wt.on) && visible(user, s2, u, 'profile')) audience.push(u);
      const pr = profileOf(s2);
      void this.#d.relay(audience, { op: 'profile', user, profile: pr, version: pr.version })
        .catch((e: Error) => this.#d.log.info({ user, err: e.message }, 'profile change not pushed to every contact'));
    }
    for (const u of new Set([...first.keys(), ...plan.lists])) void this.#p.reads.announce(user, u, s2.pairs.get(u) ?? emptyPair());
  }

  /** What a change of a relation by the other side changes for others: admissions revoked where
   * it got stricter, and presence shown or hidden to the other user. */
  async effects(user: string, s: SocialState, other: string, before: Pair, after: Pair): Promise<void> {
    const stricter = (!before.bm.on && after.bm.on) || (friends(before) && !friends(after) && s.privacy.dm === 'contacts');
    if (stricter) await this.#p.gates.revokeAll([user]);
    this.#p.presence.presenceTo(user, s, (w) => w.user === other, { s: { ...s, pairs: new Map(s.pairs).set(other, before) }, online: this.#d.lookup(user).online });
  }
}
