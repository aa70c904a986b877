// Pushes to connections held by other nodes' gateways. A message pushed to many members on one
// gateway (a group message) would otherwise cross once per member with its whole body: within a
// tick, msg frames to one peer are grouped by mid into one `pushmsg` envelope (the body once,
// then connection and seq per member). Each connection's frames keep their order: a frame never
// joins a group that goes out before one its connection already has a frame in.
import type { MsgEvent, ServerFrame } from '../protocol/frames.ts';
import type { PeerOneWay } from '../protocol/peer.ts';

type Group = { msg: Omit<MsgEvent, 'op' | 'seq'>; to: [string, number][] };
type Pending = { groups: Group[]; latest: Map<string, number>; lastOf: Map<string, number> };

export function createPushes(send: (peer: string, msg: PeerOneWay) => void): (peer: string, conn: string, frame: ServerFrame) => void {
  const pending = new Map<string, Pending>();
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    const all = [...pending];
    pending.clear();
    for (const [peer, p] of all) {
      for (const g of p.groups) {
        if (g.to.length === 1) send(peer, { t: 'push', conn: g.to[0]![0], frame: { op: 'msg', seq: g.to[0]![1], ...g.msg } });
        else send(peer, { t: 'pushmsg', msg: g.msg, to: g.to });
      }
    }
  }

  return (peer, conn, frame) => {
    if (frame.op !== 'msg') {
      // Other frames go at once; a connection's msg frames still waiting keep their own order.
      send(peer, { t: 'push', conn, frame });
      return;
    }
    let p = pending.get(peer);
    if (!p) pending.set(peer, (p = { groups: [], latest: new Map(), lastOf: new Map() }));
    let i = p.latest.get(frame.mid);
    if (i === undefined || i < (p.lastOf.get(conn) ?? -1)) {
      const { op: _op, seq: _seq, ...msg } = frame;
      i = p.groups.push({ msg, to: [] }) - 1;
      p.latest.set(frame.mid, i);
    }
    p.groups[i]!.to.push([conn, frame.seq]);
    p.lastOf.set(conn, i);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}
