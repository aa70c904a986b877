// A session's timeline on its connection: pushed entries go out in seq order, each once; while
// the replay after login runs, pushes are buffered (bounded: past MAX_REPLAY_BUFFER the buffer is
// dropped and the timeline read again), then delivered behind the replayed entries.
import type { MsgEvent } from '../protocol/frames.ts';
import type { ClientConn } from './conn.ts';
import type { Connections } from './connections.ts';

const REPLAY_PAGE = 500;
const MAX_REPLAY_BUFFER = 10_000;

export async function replay(g: Connections, cc: ClientConn, since: number): Promise<void> {
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
  for (const m of buffered) deliverMsg(g, cc, m);
}

export function deliverMsg(g: Connections, cc: ClientConn, m: MsgEvent): void {
  if (cc.replaying) {
    if (cc.buffer.length >= MAX_REPLAY_BUFFER) {
      cc.buffer = [];
      cc.overflow = true;
    }
    if (!cc.overflow) cc.buffer.push(m);
    return;
  }
  if (m.seq <= cc.pushed) return;
  cc.pushed = m.seq;
  g.metrics.messagesOut.inc();
  g.send(cc, m);
}
