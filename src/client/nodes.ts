// The node URLs a session knows and the order it tries them in: one start (random, or the first
// URL), the nodes a goaway names before the rest, and the jittered backoff between attempts.
import type { SessionOptions } from './types.ts';

type NodeOptions = Required<Pick<SessionOptions, 'start' | 'random' | 'backoffMs'>>;

export class NodeList {
  #opts: NodeOptions;
  #urls: string[];
  #index: number;
  #preferred: string[] = [];

  constructor(urls: string[], opts: NodeOptions) {
    this.#opts = opts;
    this.#urls = [...new Set(urls)];
    // next() steps before it reads: start one before the URL wanted first.
    const first = opts.start === 'first' ? 0 : Math.floor(opts.random() * this.#urls.length);
    this.#index = (first + this.#urls.length - 1) % this.#urls.length;
  }

  get urls(): string[] {
    return [...this.#urls];
  }

  add(urls: string[]): void {
    for (const u of urls) if (!this.#urls.includes(u)) this.#urls.push(u);
  }

  /** Replaces the URLs (at least one): later attempts go only to these, a goaway's nodes not in
   * them included. The rotation goes on from the URL last tried, or from its place if it is gone. */
  set(urls: string[]): void {
    const list = [...new Set(urls)];
    if (!list.length) throw new Error('a session needs at least one node URL');
    const at = list.indexOf(this.#urls[this.#index]!);
    // next() steps before it reads: one before the place, so the URL now there comes next.
    this.#index = at >= 0 ? at : (Math.min(this.#index, list.length) + list.length - 1) % list.length;
    this.#urls = list;
    this.#preferred = this.#preferred.filter((u) => list.includes(u));
  }

  next(): string {
    const p = this.#preferred.shift();
    if (p) return p;
    this.#index = (this.#index + 1) % this.#urls.length;
    return this.#urls[this.#index]!;
  }

  /** A goaway from the node at `current`: the nodes it names join the list, and the next attempts
   * go to them (any of them; the rest are tried after). */
  goaway(nodes: string[], current: string): void {
    this.add(nodes);
    const others = nodes.filter((u) => u !== current);
    this.#preferred = others.sort(() => this.#opts.random() - 0.5);
  }

  /** Full jitter: a random wait between 0 and min(max, min * 2^attempt). */
  backoff(attempt: number): number {
    const { min, max } = this.#opts.backoffMs;
    return Math.floor(this.#opts.random() * Math.min(max, min * 2 ** Math.min(attempt, 16)));
  }
}
