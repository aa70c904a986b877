// The fence around an import or a drop: appends of the users concerned are refused while it waits
// and runs (StoreCore.importing counts the fences each user is inside).

/** Runs `work` with appends of `names` refused (append throws: "being imported"), from now until
 * it is done: an append made while the job waits or runs would take a seq the job then writes
 * or forgets, and its commit would fail on the UNIQUE key and stop the node (found by the peer
 * fuzzer: an absorb's dropUsers racing a delivery). */
export async function fenced<T>(importing: Map<string, number>, names: Iterable<string>, work: () => Promise<T>): Promise<T> {
  const held = [...new Set(names)];
  for (const u of held) importing.set(u, (importing.get(u) ?? 0) + 1);
  try {
    return await work();
  } finally {
    for (const u of held) {
      const n = (importing.get(u) ?? 1) - 1;
      if (n > 0) importing.set(u, n);
      else importing.delete(u);
    }
  }
}
