// A session's timeline on its connection: pushed entries go out in seq order, each once; while
// the replay after login runs, pushes are buffered (bounded: past MAX_REPLAY_BUFFER the buffer is
// dropped and the timeline read again), then delivered behind the replayed entries. A connection
// that lacks entries its home holds (registered again there, or a gap in its pushes) is caught up
// the same way, from the last seq it was pushed.
import type { MsgEvent } from '../protocol/frames.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';

const REPLAY_PAGE = 500;
const MAX_REPLAY_BUFFER = 10_000;

export async function replay(g: Connections, cc: ClientConn, since: number, fill = true): Promise<void> {
  const user = cc.session!.user;
  let after = since;
  for (;;) {
    for (;;) {
      const page = await g.homes.sync(user, after, REPLAY_PAGE);
      if (cc.closed) return;
      // The last frame of a page is awaited until written, so a long replay cannot pile up memory.
      const written = new Promise<void>((ok) => {
        page.msgs.forEach((m, i) => g.send(cc, { op: 'msg', ...m }, i === page.msgs.length - 1 ? () => ok() : undefined));
        if (page.msgs.length === 0 || cc.closed) ok();
      });
      if (page.msgs.length) after = page.msgs[page.msgs.length - 1]!.seq;
      if (!page.more) break;
      await written;
    }
    if (!cc.overflow) break;
    cc.overflow = false; // pushes were dropped while replaying: read the timeline again
  }
  cc.pushed = Math.max(cc.pushed, after);
  cc.replaying = false;
  const buffered = cc.buffer;
  cc.buffer = [];
  for (const m of buffered) deliverMsg(g, cc, m, fill);
}

/**
 * Reads what a connection lacks from its user's home, from the last seq it was pushed: live
 * pushes meanwhile are buffered behind the read, as after login. Two reasons:
 * - `registered`: the session was registered again at a home (the ring moved, or the home had
 *   lost it) that holds entries up to `seq`; those it committed before were pushed to nobody;
 * - `gap`: a push came with a seq past the next one, so one between was lost on the way (its
 *   home died before pushing it, or pushed it to a gateway it no longer knew).
 * If the read fails the connection is closed: the client logs in again and replays.
 */
export function catchUp(g: Connections, cc: ClientConn, seq: number, reason: 'registered' | 'gap'): void {
  if (cc.closed || !cc.session || cc.replaying || seq <= cc.pushed) return;
  cc.replaying = true;
  g.metrics.catchUps.inc({ reason });
  g.log.debug({ conn: cc.id, user: cc.session.user, from: cc.pushed, to: seq, reason }, 'catching a session up');
  replay(g, cc, cc.pushed, false).catch((e: Error) => {
    g.log.warn({ conn: cc.id, err: e.message, reason }, 'catch-up failed: closing the connection, the client replays on its next login');
    g.close(cc, 1011, 'catch-up failed');
  });
}

/** Pushes `m` in seq order, once; a gap before it is filled from the home first (unless `fill`
 * is false: right after a read, when what the home had is all there is). */
export function deliverMsg(g: Connections, cc: ClientConn, m: MsgEvent, fill = true): void {
  if (cc.replaying) {
    if (cc.buffer.length >= MAX_REPLAY_BUFFER) {
      cc.buffer = [];
      cc.overflow = true;
    }
    if (!cc.overflow) cc.buffer.push(m);
    return;
  }
  if (m.seq <= cc.pushed) return;
  if (fill && m.seq > cc.pushed + 1) {
    catchUp(g, cc, m.seq - 1, 'gap');
    // Behind the read; had none started (nothing to read for), it goes out now as before.
    if (cc.replaying) {
      cc.buffer.push(m);
      return;
    }
  }
  cc.pushed = m.seq;
  g.metrics.messagesOut.inc();
  g.send(cc, m);
}
