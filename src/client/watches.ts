// The users whose presence the app watches. A watch lives with its connection at the node, so
// the session keeps the list and watches them all again on every new connection.
import type { Connection } from './connection.ts';

export class WatchList {
  #users = new Set<string>();

  get size(): number {
    return this.#users.size;
  }

  add(users: string[]): void {
    for (const u of users) this.#users.add(u);
  }

  delete(users: string[]): void {
    for (const u of users) this.#users.delete(u);
  }

  /** Watches every user again on a new connection, 500 a request; stops at the first failure. */
  async renew(conn: Connection, timeoutMs: number, onError: (e: Error) => void): Promise<void> {
    const users = [...this.#users];
    for (let i = 0; i < users.length; i += 500) {
      try {
        await conn.request({ op: 'watch', users: users.slice(i, i + 500) }, timeoutMs);
      } catch (e) {
        onError(e as Error);
        return;
      }
    }
  }
}
