// Cluster-wide delivery for groups and relays: a group home's messages go to the members' homes
// in one request per home node (never one per member), retried on newer rings for the members
// whose home moved; typing notices and receipts go to the homes of the users who should see
// them; receipt queries are answered by the members' homes, one request per home node.
import type { Ring } from '../ring/index.ts';
import { dmConv, isId, parseConv } from '../protocol/frames.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { entryWireChars, parsePeerReply, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import type { FanItem, PeerRequest } from '../protocol/peer.ts';
import { ForbiddenError, UnavailableError } from '../protocol/errors.ts';
import type { Home, Homes } from '../home/home.ts';
import type { Router } from '../cluster/router.ts';

export type FanoutComponents = {
  self: string;
  ring: () => Ring;
  joined: () => boolean;
  local: Home;
  router: Router;
  peerOf: (name: string) => string | undefined;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  ringChange: (ms: number) => Promise<void>;
  /** One fan-out request went to a peer (for the metrics). */
  onRequest?: () => void;
  /** Whether the recipient takes typing from the sender (a block, contacts only): social.ts. */
  gate?: (from: string, to: string, kind: 'typing') => true | Promise<void>;
  deadlineMs?: number;
};

export type Fanout = Pick<Homes, 'group' | 'typing' | 'receipts'> & {
  /** Resolves once every member's copy of every item is durable at the member's home. */
  fanout(items: FanItem[], still?: () => boolean): Promise<void>;
  relay(users: string[], frame: ServerFrame): Promise<void>;
};

const DEADLINE_MS = 8000;
const RETRY_MS = 300;
/** Member copies one fan-out request makes at most: a home takes a large group's message in
 * several commits, so that the other writes queued there (1:1 sends) wait for less. */
const REQUEST_COPIES = 2500;
const itemChars = (it: FanItem) => entryWireChars(it.body) + it.users.reduce((n, u) => n + u.length + 3, 0);

type Part = { index: number; item: FanItem };

export function createFanout(c: FanoutComponents): Fanout {
  const deadlineMs = c.deadlineMs ?? DEADLINE_MS;

  /** Sends the parts for one home node, in order, in requests of bounded size; the users whose
   * copy was not taken, per item index. A user refused in one request is left out of the later
   * ones, so that none of its copies overtakes the one to be retried. */
  async function toNode(owner: string, parts: Part[], deadline: number): Promise<Map<number, string[]>> {
    const failed = new Map<number, string[]>();
    const fail = (index: number, users: string[]) => {
      if (users.length) failed.set(index, [...(failed.get(index) ?? []), ...users]);
    };
    const refused = new Set<string>();
    let i = 0;
    while (i < parts.length) {
      const chunk: Part[] = [];
      let chars = 0;
      let copies = 0;
      while (i < parts.length) {
        const p = parts[i]!;
        if (refused.size) {
          const late = p.item.users.filter((u) => refused.has(u));
          fail(p.index, late);
          if (late.length) p.item = { ...p.item, users: p.item.users.filter((u) => !refused.has(u)) };
        }
        const item = p.item;
        if (item.users.length === 0) {
          i++;
          continue;
        }
        if (chunk.length > 0 && (chars + itemChars(item) > PEER_BUDGET_CHARS || copies >= REQUEST_COPIES)) break;
        const room = REQUEST_COPIES - copies;
        if (item.users.length > room) {
          // A large group's message goes in several requests, in order: each takes a share of
          // the members, so that no one request makes more than REQUEST_COPIES copies.
          chunk.push({ index: p.index, item: { ...item, users: item.users.slice(0, room) } });
          p.item = { ...item, users: item.users.slice(room) };
          break;
        }
        chunk.push({ index: p.index, item });
        chars += itemChars(item);
        copies += item.users.length;
        i++;
      }
      if (chunk.length === 0) continue;
      let result: string[][];
      try {
        if (owner === c.self) {
          result = await c.local.deliverFan(chunk.map((p) => p.item));
        } else {
          const peer = c.peerOf(owner);
          if (!peer) throw new Error(`no address for ${owner}`);
          c.onRequest?.();
          const reply = parsePeerReply(await c.request(peer, { t: 'fanout', rv: c.ring().version, items: chunk.map((p) => p.item) },
            { timeoutMs: Math.max(100, Math.min(5000, deadline - Date.now())) }));
          if (reply.t === 'fail') throw new Error(reply.message);
          const v = reply.value;
          if (!Array.isArray(v) || v.length !== chunk.length || !v.every((a) => Array.isArray(a) && a.every(isId))) throw new Error(`malformed fanout reply from ${owner}`);
          result = v as string[][];
        }
      } catch {
        result = chunk.map((p) => p.item.users);
      }
      chunk.forEach((p, k) => {
        const no = result[k]!;
        fail(p.index, no);
        for (const u of no) refused.add(u);
      });
    }
    return failed;
  }

  async function fanout(items: FanItem[], still: () => boolean = () => true): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let todo: Part[] = items.map((item, index) => ({ index, item }));
    for (let round = 0; ; round++) {
      if (!still()) throw new UnavailableError('this node no longer serves the group');
      if (round > 0) {
        if (Date.now() >= deadline) {
          const left = todo.reduce((n, p) => n + p.item.users.length, 0);
          throw new UnavailableError(`${left} member copies could not be delivered (their homes are not reachable)`);
        }
        await c.ringChange(RETRY_MS);
      }
      if (!c.joined()) continue;
      const ring = c.ring();
      const byOwner = new Map<string, Part[]>();
      for (const p of todo) {
        const per = new Map<string, string[]>();
        for (const u of p.item.users) {
          const o = ring.owner(u) ?? c.self;
          let l = per.get(o);
          if (!l) per.set(o, (l = []));
          l.push(u);
        }
        for (const [o, users] of per) {
          let l = byOwner.get(o);
          if (!l) byOwner.set(o, (l = []));
          l.push({ index: p.index, item: { ...p.item, users } });
        }
      }
      const failed = await Promise.all([...byOwner].map(([o, parts]) => toNode(o, parts, deadline)));
      const again = new Map<number, string[]>();
      for (const f of failed) for (const [i, us] of f) again.set(i, [...(again.get(i) ?? []), ...us]);
      todo = [...again].sort((a, b) => a[0] - b[0]).map(([index, users]) => ({ index, item: { ...items[index]!, users } }));
      if (todo.length === 0) return;
    }
  }

  async function relay(users: string[], frame: ServerFrame): Promise<void> {
    if (users.length === 0) return;
    await c.router.perHome(users, async (us) => c.local.relay(us, frame), async (peer, us) => {
      await c.router.remote(peer, { t: 'relay', users: us, frame });
    });
  }

  return {
    fanout,
    relay,

    group: (actor, op, group, members) => c.router.groupCall(actor, op, group, members),

    async typing(from, target) {
      if ('group' in target) return c.router.castGroup(target.group, from, { kind: 'typing' });
      if (target.to === from) return;
      const gate = c.gate?.(from, target.to, 'typing') ?? true;
      if (gate !== true) await gate;
      await relay([target.to], { op: 'typing', from, conv: dmConv(from, target.to) });
    },

    async receipts(user, conv) {
      const p = parseConv(conv);
      let users: string[];
      if (p?.kind === 'dm') {
        if (p.a !== user && p.b !== user) throw new ForbiddenError(`${user} is not part of ${conv}`);
        users = [p.a, p.b];
      } else if (p?.kind === 'group') {
        users = (await c.router.groupCall(user, 'members', p.group, []))!.members;
      } else {
        return {};
      }
      const parts = await c.router.perHome(users, (us) => c.local.readMarks(conv, us), async (peer, us) => {
        const v = await c.router.remote(peer, { t: 'readmarks', conv, users: us });
        if (typeof v !== 'object' || v === null) throw new Error('malformed readmarks reply');
        const out: Record<string, string> = {};
        for (const u of us) {
          const m = (v as Record<string, unknown>)[u];
          if (typeof m === 'string' && m.length <= 64) out[u] = m;
        }
        return out;
      });
      return Object.assign({}, ...parts) as Record<string, string>;
    },
  };
}
