// The pause before a retry, for the pump and the fan-out: `ms` on the injected clock, cut short
// by a ring change (the group's home or a member's home may have moved, so the retry goes at
// once to the new owner), and rejected as soon as `signal` aborts (the node is stopping).
import type { Clock } from '../clock/index.ts';

export type PauseComponents = {
  /** Resolves when the ring changes or after `ms`. */
  ringChange: (ms: number) => Promise<void>;
  clock: Clock;
  signal?: AbortSignal | undefined;
};

export function pause(c: PauseComponents, ms: number): Promise<void> {
  // Race subscribes to both, so the sleep's rejection after a ring change won is handled.
  return Promise.race([c.ringChange(ms), c.clock.sleep(ms, c.signal)]);
}
