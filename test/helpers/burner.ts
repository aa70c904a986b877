// CPU burners: busy processes that keep the cores loaded while a test runs, so that races which
// need a busy machine (a slow event loop, a late timer) show up on an idle one too. Each burner
// stops by itself after `maxMs`, so a crashed test cannot leave one spinning.
// IM_TEST_BURNERS sets how many (default 2, one per core here; 0 turns them off).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { onCleanup } from './node.ts';

export const BURNERS = Number(process.env.IM_TEST_BURNERS ?? 2);

export type Burners = { stop(): Promise<void> };

/** Starts `n` burners: processes spinning one core each at normal priority, as another busy
 * program on the machine would. */
export function startBurners(n = BURNERS, maxMs = 120_000): Burners {
  const procs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const p = spawn(process.execPath, ['-e', `const end = Date.now() + ${maxMs}; while (Date.now() < end);`], { stdio: 'ignore' });
    procs.push(p);
  }
  const stop = async () => {
    await Promise.all(procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = once(p, 'exit');
      p.kill('SIGKILL');
      await gone;
    }));
  };
  onCleanup(stop);
  return { stop };
}
