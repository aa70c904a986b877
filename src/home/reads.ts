// Timeline reads at the home: sync, history, unread counts and read marks, never beyond what
// every replica holds (a device must not see an entry a crash of the home could take back).
import type { Store, StoredEntry, Unread } from '../store/index.ts';
import { parseConv } from '../protocol/frames.ts';
import type { Entry, MsgEvent } from '../protocol/frames.ts';
import { entryWireChars, PEER_BUDGET_CHARS } from '../protocol/peer.ts';
import { ForbiddenError } from '../protocol/errors.ts';
import type { Ownership } from './ownership.ts';
import type { Page } from './types.ts';

export function toMsg(e: StoredEntry): MsgEvent {
  const m: MsgEvent = { op: 'msg', seq: e.seq, mid: e.mid, conv: e.conv, from: e.from, body: e.body, ts: e.ts };
  if (e.group !== undefined) m.group = e.group;
  else if (e.to !== undefined) m.to = e.to;
  return m;
}

/** The longest prefix of `entries` within PEER_BUDGET_CHARS (at least one entry): a reply to
 * another node must fit a peer frame, so a page of large bodies holds fewer than `limit`. */
function capPage(entries: StoredEntry[]): StoredEntry[] {
  let chars = 0;
  for (let i = 0; i < entries.length; i++) {
    chars += entryWireChars(entries[i]!.body);
    if (i > 0 && chars > PEER_BUDGET_CHARS) return entries.slice(0, i);
  }
  return entries;
}

const toEntry = (e: StoredEntry): Entry => {
  const { op: _op, ...entry } = toMsg(e);
  return entry;
};

export function checkConv(user: string, conv: string): void {
  const p = parseConv(conv);
  if (p?.kind === 'dm' && p.a !== user && p.b !== user) throw new ForbiddenError(`${user} is not part of ${conv}`);
}

export type ReadsDeps = {
  store: Store;
  own: Ownership;
  /** The highest seq of a user's timeline reads may show. */
  readable: (user: string) => number;
  maxReadBytes: number;
  onLimit: ((what: 'devices' | 'read_bytes') => void) | undefined;
};

export class Reads {
  #c: ReadsDeps;

  constructor(c: ReadsDeps) {
    this.#c = c;
  }

  async sync(user: string, after: number, limit: number): Promise<Page> {
    // Never a read that could be stale: not from a copy that may lack confirmed writes, nor on
    // a node cut off from the majority (the others may have written since).
    this.#c.own.refuseUnserved(user);
    const { entries, more } = await this.#c.store.readers.sync(user, after, limit, this.#c.maxReadBytes);
    const { shown, visible } = this.#page(user, entries, more, limit);
    // What is held back comes by push once the replicas have it; a page cut for size has more.
    return { msgs: shown.map(toEntry), more: shown.length < visible.length || (more && visible.length === entries.length) };
  }

  async history(user: string, conv: string, before: number | undefined, limit: number): Promise<Page> {
    checkConv(user, conv);
    this.#c.own.refuseUnserved(user);
    const { entries, more } = await this.#c.store.readers.history(user, conv, before, limit, this.#c.maxReadBytes);
    const { shown, visible } = this.#page(user, entries, more, limit);
    return { msgs: shown.map(toEntry), more: more || shown.length < visible.length };
  }

  #page(user: string, entries: StoredEntry[], more: boolean, limit: number): { shown: StoredEntry[]; visible: StoredEntry[] } {
    if (more && entries.length < limit) this.#c.onLimit?.('read_bytes');
    const upTo = this.#c.readable(user);
    const visible = entries.filter((e) => e.seq <= upTo);
    return { shown: capPage(visible), visible };
  }

  async unread(user: string): Promise<Unread> {
    this.#c.own.refuseUnserved(user);
    return this.#c.store.unread(user);
  }

  async readMarks(conv: string, users: string[]): Promise<Record<string, string>> {
    return Object.fromEntries(await this.#c.store.readMarks(conv, users.filter((u) => this.#c.own.owns(u))));
  }
}
