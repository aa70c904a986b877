// Typing notices and receipts across the cluster (fanout.ts is the surface): frames go to the
// homes of the users who should see them, and receipt queries are answered by the members'
// homes, one request per home node.
import { dmConv, parseConv } from '../protocol/frames.ts';
import type { ServerFrame } from '../protocol/frames.ts';
import { ForbiddenError } from '../protocol/errors.ts';
import type { FanoutComponents } from './fanout.ts';

export class Relays {
  #c: Pick<FanoutComponents, 'locals' | 'router' | 'gate'>;

  constructor(c: Pick<FanoutComponents, 'locals' | 'router' | 'gate'>) {
    this.#c = c;
  }

  async relay(users: string[], frame: ServerFrame): Promise<void> {
    const c = this.#c;
    if (users.length === 0) return;
    await c.router.perHome(users, async (us) => c.locals.local.relay(us, frame), async (peer, us) => {
      await c.router.remote(peer, { t: 'relay', users: us, frame });
    });
  }

  async typing(from: string, target: { to: string } | { group: string }): Promise<void> {
    const c = this.#c;
    if ('group' in target) return c.router.castGroup(target.group, from, { kind: 'typing' });
    if (target.to === from) return;
    const gate = c.gate?.(from, target.to, 'typing') ?? true;
    if (gate !== true) await gate;
    await this.relay([target.to], { op: 'typing', from, conv: dmConv(from, target.to) });
  }

  async receipts(user: string, conv: string): Promise<Record<string, string>> {
    const c = this.#c;
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
    const parts = await c.router.perHome(users, (us) => c.locals.local.readMarks(conv, us), async (peer, us) => {
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
  }
}
