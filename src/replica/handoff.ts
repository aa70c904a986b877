// Join handoff, copy then switch: before a newcomer joins, it copies from every member the users
// it will own in the ring that includes it (while those members keep serving), then asks them to
// freeze those users and copies the tail, and only then joins, so the ring switches to a node
// that already holds everything. The members release the freeze and drop the moved users once
// their ring includes the newcomer.
//
// This file is the public surface; the sides live in handoff-join.ts (newcomer),
// handoff-serve.ts (member), handoff-leave.ts (leaver and receiver) and copy-progress.ts.
import type { Logger } from 'pino';
import type { Ring } from '../ring/index.ts';
import type { Store } from '../store/index.ts';
import type { Page, PeerReply, PeerRequest } from '../protocol/peer.ts';
import type { Home } from '../home/home.ts';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { CopyTracker } from './copy-progress.ts';
import type { HandoffEnv } from './handoff-copy.ts';
import { acquire } from './handoff-join.ts';
import { absorb, holding, release } from './handoff-leave.ts';
import { HandoffMember } from './handoff-serve.ts';

export { fitPage } from './fit-page.ts';

export type HandoffComponents = {
  self: string;
  store: Store;
  home: Home;
  ring: () => Ring;
  request: (peer: string, msg: PeerRequest, opts?: { timeoutMs?: number }) => Promise<unknown>;
  peerOf: (name: string) => string | undefined;
  maxBody: number;
  log: Logger;
  vnodes: number;
  replicas: number;
  onProgress?: (entries: number, users: number) => void;
  /** Whether this node's copy of a key is complete (see custody): only those are handed to a
   * newcomer, so a rejoining node never trades its own copy for a partial one. */
  complete?: (key: string) => boolean;
  /** Time for how long a member keeps a newcomer's pause on record (default: the system's). */
  clock?: Clock;
  /** Aborted when the node stops: ends the member side's timers. A leave (release) does not take
   * it: the node runs it while it stops, to hand its data over before it goes. */
  signal?: AbortSignal;
};

export type Handoff = {
  /** Newcomer side: copy what this node will own from the members of `table`, then freeze-copy the tail. */
  /** `inPlace`: this node restarted before anyone declared it dead; it takes no key from anyone,
   * so a member that cannot be reached is skipped (its keys wait for it anyway). */
  acquire(members: { name: string; peer: string }[], inPlace?: boolean): Promise<{ users: number; entries: number; ms: number }>;
  /** Member side: one page of the users `req.target` will own. */
  serve(req: Extract<PeerRequest, { t: 'handoff' }>): Promise<PeerReply>;
  /** Member side: the ring changed; release freezes whose newcomer is in it and drop what moved. */
  ringChanged(ring: Ring): Promise<void>;
  /** Leaver side: push every user this node owns or replicates to the nodes that hold it in the
   * ring without this node, in bulk while serving; then the tail of the owned ones with their
   * writes paused (until exit); then `announce` (the leave gossip); then the tail of the
   * replicated ones, final once the others stopped writing to this node. */
  release(announce: () => Promise<void>): Promise<{ users: number; entries: number; ms: number }>;
  /** Receiver side of release: import one pushed page. */
  absorb(page: Page): Promise<PeerReply>;
  /** Receiver side of release: what this node holds of `users`, as [user, seq, digest]. */
  holding(users: string[]): Promise<PeerReply>;
  /** Newcomers this node has paused users for and not yet seen in its ring. */
  outgoing(): string[];
  /** This node's own copy in flight (joining or leaving), if any. */
  copying(): CopyProgress | undefined;
};

export type CopyProgress = { kind: 'join' | 'leave'; phase: 'bulk' | 'tail'; users: number; entries: number; ms: number; perSecond: number };

export function createHandoff(c: HandoffComponents): Handoff {
  const progress = new CopyTracker(c.log, c.onProgress);
  const env: HandoffEnv = { c, opts: { vnodes: c.vnodes, replicas: c.replicas }, progress };
  const member = new HandoffMember(env, c.clock ?? systemClock, c.signal);
  return {
    acquire: (members, inPlace = false) => progress.tracked('join', () => acquire(env, members, inPlace)),
    serve: (req) => member.serve(req),
    ringChanged: (ring) => member.ringChanged(ring),
    release: (announce) => progress.tracked('leave', () => release(env, announce)),
    absorb: (page) => absorb(env, page),
    holding: (users) => holding(env, users),
    outgoing: () => member.outgoing(),
    copying: () => progress.view(),
  };
}
