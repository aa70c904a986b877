// Why an import was refused: a contradicting entry (ConflictError) or a hole it would leave in a
// timeline (GapError). Callers branch on `name`; importEach returns them per user.

/** An imported entry contradicts one already stored (same user and seq, other mid; or its dedup
 * key is stored at another seq). Nothing of the import was written. */
export class ConflictError extends Error {
  readonly user: string;
  readonly seq: number;
  constructor(user: string, seq: number, detail: string) {
    super(`conflict in ${user}'s timeline at seq ${seq}: ${detail}`);
    this.name = 'ConflictError';
    this.user = user;
    this.seq = seq;
  }
}

/** An import would leave a hole in a timeline: its entries (or its snapshot's seq) do not follow
 * on from what is stored. Nothing was written; export again with `after` = what is stored
 * (userSeqs). Seqs 1..n without gaps is invariant 2 of docs/CLUSTER.md. */
export class GapError extends Error {
  readonly user: string;
  /** the seq the import had to bring next */
  readonly expected: number;
  readonly got: number;
  constructor(user: string, expected: number, got: number) {
    super(`gap in ${user}'s timeline: expected seq ${expected}, got ${got}`);
    this.name = 'GapError';
    this.user = user;
    this.expected = expected;
    this.got = got;
  }
}

export type ImportRejection = GapError | ConflictError;
