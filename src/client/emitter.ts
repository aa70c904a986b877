// A tiny typed event emitter that runs in Node and in browsers alike (node:events does not exist
// in a browser, and EventTarget cannot type its payloads). A listener that throws does not stop
// the others, nor the client's own bookkeeping: its error is rethrown on a later tick, where a
// browser reports it in the console and Node treats it as an uncaught exception.

export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  #listeners = new Map<keyof E, Set<Function>>();

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return this;
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    this.#listeners.get(event)?.delete(fn);
    return this;
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    const wrap = (...args: E[K]) => {
      this.off(event, wrap);
      fn(...args);
    };
    return this.on(event, wrap);
  }

  /** How many listeners an event has (an app may skip work nobody listens to). */
  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<E[K]>)(...args);
      } catch (e) {
        // One faulty listener must not break the client's own bookkeeping (acks, replay).
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
