// How far this node's own handoff copy (joining or leaving) is: for /cluster, metrics, and a log
// line every PROGRESS_LOG_MS while a long copy runs.
import type { Logger } from 'pino';
import type { CopyProgress } from './handoff.ts';

/** A long copy logs how far it is this often. */
const PROGRESS_LOG_MS = 5000;

type Copy = { kind: CopyProgress['kind']; phase: CopyProgress['phase']; users: number; entries: number; t0: number; logged: number };

export class CopyTracker {
  #copy: Copy | undefined;
  readonly #log: Logger;
  readonly #onProgress: ((entries: number, users: number) => void) | undefined;

  constructor(log: Logger, onProgress?: (entries: number, users: number) => void) {
    this.#log = log;
    this.#onProgress = onProgress;
  }

  /** Runs one copy of this node's, shown as in flight until it ends. */
  async tracked<T>(kind: CopyProgress['kind'], run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    this.#copy = { kind, phase: 'bulk', users: 0, entries: 0, t0, logged: t0 };
    try {
      return await run();
    } finally {
      this.#copy = undefined;
    }
  }

  /** The copy in flight passed from the bulk pass to the tail (writes paused). */
  tail(): void {
    if (this.#copy) this.#copy.phase = 'tail';
  }

  view(): CopyProgress | undefined {
    const copy = this.#copy;
    if (!copy) return undefined;
    const ms = Math.round(performance.now() - copy.t0);
    return { kind: copy.kind, phase: copy.phase, users: copy.users, entries: copy.entries, ms, perSecond: ms > 0 ? Math.round((copy.entries * 1000) / ms) : 0 };
  }

  /** Counts a copied or pushed page; a long copy says how far it is every PROGRESS_LOG_MS. */
  moved(entries: number, users: number): void {
    this.#onProgress?.(entries, users);
    const copy = this.#copy;
    if (!copy) return;
    copy.entries += entries;
    copy.users += users;
    if (performance.now() - copy.logged >= PROGRESS_LOG_MS) {
      copy.logged = performance.now();
      this.#log.info(this.view(), 'handoff progress');
    }
  }
}
