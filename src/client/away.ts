// Auto-away: after `idleMs` with no activity from the app (session.activity()), a user whose
// status is 'available' is set 'away'; the next activity sets 'available' again, but only if this
// session was the one that set away and nobody changed the status through it since. The status
// belongs to the user, not the device: before going away the session asks the node what it is
// now, so a 'busy' or 'invisible' set elsewhere is left alone. Changes are made one at a time, in
// the order they were decided.
import type { StatusValue } from '../protocol/frames.ts';

export type AwayHooks = {
  /** The user's status now, as the node says (undefined: offline or unknown, so leave it). */
  current(): Promise<{ status: StatusValue; text?: string } | undefined>;
  /** Sets the status (the request; resolves once the node took it). */
  set(status: StatusValue, text: string | undefined): Promise<unknown>;
  /** This module changed the status (the session tells the app). */
  changed(status: StatusValue, text: string | undefined): void;
  now?(): number;
};

export class Away {
  #idleMs: number;
  #hooks: AwayHooks;
  #last: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Set while the status is an 'away' this module set: the text to go back with. */
  #ours: { text: string | undefined } | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Bumped when the app sets a status: a change of ours decided before it must not claim it. */
  #appSets = 0;
  #stopped = false;

  constructor(idleMs: number, hooks: AwayHooks) {
    this.#idleMs = idleMs;
    this.#hooks = hooks;
    this.#last = this.#now();
    this.#arm(idleMs);
  }

  /** Whether the status now is an 'away' set by this module. */
  get away(): boolean {
    return !!this.#ours;
  }

  #now(): number {
    return this.#hooks.now ? this.#hooks.now() : Date.now();
  }

  #idle(): boolean {
    return this.#now() - this.#last >= this.#idleMs;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#check();
    }, Math.max(0, ms));
  }

  /** Runs status changes one after another; a failed one is left as it is (the next activity or idle period tries again). */
  #queue(fn: () => Promise<void>): void {
    this.#chain = this.#chain.then(fn).catch(() => undefined);
  }

  #check(): void {
    if (this.#stopped) return;
    const left = this.#idleMs - (this.#now() - this.#last);
    if (left > 0) return this.#arm(left); // there was activity since the timer was set
    // Idle: from here the next activity arms the timer again (nothing polls while the user is away).
    if (this.#ours) return;
    this.#queue(async () => {
      if (this.#stopped || this.#ours || !this.#idle()) return;
      const gen = this.#appSets;
      const cur = await this.#hooks.current();
      if (this.#stopped || !this.#idle() || gen !== this.#appSets || cur?.status !== 'available') return;
      await this.#hooks.set('away', cur.text);
      if (this.#stopped || gen !== this.#appSets) return;
      this.#ours = { text: cur.text };
      this.#hooks.changed('away', cur.text);
      if (!this.#idle()) this.activity(); // activity came while the change was on its way
    });
  }

  /** The user did something: the idle clock starts again, and an away set here goes back to available. */
  activity(): void {
    this.#last = this.#now();
    if (this.#stopped) return;
    if (!this.#timer) this.#arm(this.#idleMs);
    if (!this.#ours) return;
    this.#queue(async () => {
      const ours = this.#ours;
      if (!ours || this.#stopped) return;
      await this.#hooks.set('available', ours.text);
      if (this.#ours !== ours) return; // the app set a status meanwhile: it stands
      this.#ours = undefined;
      this.#hooks.changed('available', ours.text);
      this.#arm(this.#idleMs);
    });
  }

  /** The app set a status itself: an away set here is no longer ours to undo. */
  statusSet(): void {
    this.#appSets++;
    this.#ours = undefined;
    this.#arm(this.#idleMs - (this.#now() - this.#last));
  }

  /** Stops for good; returns the text to go back to 'available' with if the status is an away set here. */
  stop(): { text: string | undefined } | undefined {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const ours = this.#ours;
    this.#ours = undefined;
    return ours;
  }
}
