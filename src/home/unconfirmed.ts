// Entries a home has committed that its replicas have not all acknowledged yet, per user. Reads
// (sync, history, the seq in welcome) stop short of them, as pushes do: a device never sees an
// entry that a crash of the home could take back and give to another message.

type Mark = { from: number };

export class Unconfirmed {
  #pending = new Map<string, Set<Mark>>();

  /** The entries of `user` from seq `from` on are unconfirmed until `acked` settles (either way:
   * rejected means this node is no longer the home, and reads go elsewhere). */
  track(user: string, from: number, acked: Promise<unknown>): void {
    const mark: Mark = { from };
    let set = this.#pending.get(user);
    if (!set) this.#pending.set(user, (set = new Set()));
    set.add(mark);
    const done = (): void => {
      set.delete(mark);
      if (set.size === 0 && this.#pending.get(user) === set) this.#pending.delete(user);
    };
    acked.then(done, done);
  }

  /** The highest seq of `user` that reads may show (Infinity when nothing is unconfirmed). */
  limit(user: string): number {
    let min = Infinity;
    for (const m of this.#pending.get(user) ?? []) min = Math.min(min, m.from);
    return min - 1;
  }
}
