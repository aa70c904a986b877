// The order in which a sender's copies enter the router: per sender, the copies on their way and
// not inside the router (waiting for their sender's replicas, or between two attempts) stand in
// one line by mid, and a copy enters only once every copy of the sender ahead of it in the line
// has entered or gone. Inside, the router keeps each recipient's copies in order
// (src/cluster/deliveries.ts); a copy that comes back out to be tried again takes its place in
// the line again, ahead of the sender's newer copies.

/** One copy's place in its sender's line. */
export type Ticket = { readonly key: string; readonly mid: string; queued: boolean; go?: () => void };

export class CopyGate {
  // Per sender, sorted by mid. Holds only copies on their way, so it is bounded by them.
  #lines = new Map<string, Ticket[]>();

  /** A new copy of `key` takes its place in the line, not ready to enter yet. */
  join(key: string, mid: string): Ticket {
    const t: Ticket = { key, mid, queued: false };
    this.rejoin(t);
    return t;
  }

  /** A copy that came back out of the router takes its place again, not ready to enter yet. */
  rejoin(t: Ticket): void {
    if (t.queued) return;
    let line = this.#lines.get(t.key);
    if (!line) this.#lines.set(t.key, (line = []));
    let lo = 0;
    let hi = line.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (line[m]!.mid <= t.mid) lo = m + 1;
      else hi = m;
    }
    line.splice(lo, 0, t);
    t.queued = true;
  }

  /** Runs `run` once `t` is first in its line (it then leaves the line), synchronously and in
   * line order with the copies that go with it: `run` is where the copy enters the router. A
   * ticket not in the line runs at once. */
  enter(t: Ticket, run: () => void): void {
    if (!t.queued) {
      run();
      return;
    }
    t.go = run;
    this.#wake(t.key);
  }

  /** `t` gives up (or is done): the copies behind it may go. */
  leave(t: Ticket): void {
    if (!t.queued) return;
    const line = this.#lines.get(t.key)!;
    line.splice(line.indexOf(t), 1);
    t.queued = false;
    t.go = undefined;
    this.#wake(t.key);
  }

  /** Copies waiting in `key`'s line (for tests and metrics). */
  waiting(key: string): number {
    return this.#lines.get(key)?.length ?? 0;
  }

  #wake(key: string): void {
    const line = this.#lines.get(key);
    if (!line) return;
    while (line.length > 0 && line[0]!.go) {
      const t = line.shift()!;
      const go = t.go!;
      t.queued = false;
      t.go = undefined;
      go();
    }
    if (line.length === 0) this.#lines.delete(key);
  }
}
