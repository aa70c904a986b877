// The roster of a session that logged in with `roster`: its contacts in pages before the replay,
// and the presence of its friends and followed users without a watch (section 13 of
// docs/PROTOCOL.md), kept current by contact events.
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';

const ROSTER_PAGE = 500;

/** The roster, before the replay: the contacts in pages, and from then on the presence of
 * friends and followed users without a watch (section 13). Contact events keep it current. */
export async function sendRoster(g: Connections, cc: ClientConn): Promise<void> {
  const user = cc.session!.user;
  cc.roster = new Set();
  let after: string | undefined;
  for (;;) {
    const page = await g.c.social.contacts(user, after, ROSTER_PAGE);
    if (cc.closed) return;
    // Watched before the page goes out, so that only a change between the read of the page and
    // the watch can be missed (a moment), not one while the rest of the roster is read.
    const fresh = page.contacts.filter((k) => (k.state === 'friend' || k.following) && !cc.roster!.has(k.user)).map((k) => k.user);
    for (const u of fresh) cc.roster.add(u);
    if (fresh.length) await g.homes.watch(g.watcherOf(cc), fresh);
    if (cc.closed) return;
    g.send(cc, { op: 'roster', contacts: page.contacts, more: page.more });
    if (!page.more || page.next === undefined) break;
    after = page.next;
  }
}

/** A contact event for a roster session: its friend or follow may have begun or ended. */
export function rosterChange(g: Connections, cc: ClientConn, k: { user: string; state: string; following: boolean }): void {
  if (!cc.roster || !cc.session) return;
  const want = k.state === 'friend' || k.following;
  if (want === cc.roster.has(k.user)) return;
  if (want) cc.roster.add(k.user);
  else cc.roster.delete(k.user);
  if (cc.watching?.has(k.user)) return; // an explicit watch holds it either way
  const w = g.watcherOf(cc);
  (want ? g.homes.watch(w, [k.user]) : g.homes.unwatch(w, [k.user]))
    .catch((e: Error) => g.log.info({ conn: cc.id, user: k.user, err: e.message }, 'roster watch not changed'));
}
