// A token bucket, the one rate limit every part uses: a client connection's frames and typing
// notices (gateway), a group's posts and typing frames (group home). Pure: time is passed in.

/** A token bucket: `rate` tokens a second, at most `burst` held. */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, now: number) {
    this.rate = rate;
    this.burst = Math.max(1, burst);
    this.#tokens = this.burst;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = Math.max(this.#at, now);
  }

  /** Takes `cost` tokens (at most the burst: a cost above it needs a full bucket); 0 when taken,
   * else the ms until it could be, and nothing is taken. */
  take(cost: number, now: number): number {
    this.#refill(now);
    const need = Math.min(cost, this.burst);
    if (this.#tokens >= need) {
      this.#tokens -= need;
      return 0;
    }
    return Math.max(1, Math.ceil(((need - this.#tokens) * 1000) / this.rate));
  }

  /** Whether it holds a full burst (nothing to remember). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }
}
