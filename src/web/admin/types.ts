// The shapes the cluster page reads: /admin/api/ring, /admin/api/stats and the /cluster body of
// each node inside it (docs/PROTOCOL.md, "GET /cluster"; docs/CLUSTER.md, "Progress and work in
// flight"). Everything a node may leave out (one that is starting answers only node and state) is
// optional, so the page degrades to dashes instead of throwing.

export type MemberState = 'up' | 'suspect' | 'leaving' | 'dead';

export type RingView = {
  version: string;
  vnodes: number;
  replicas: number;
  members: string[];
  /** [start, end, member] over 0..2^32; the first arc may start below 0 (it wraps past 0). */
  arcs: [number, number, string][];
  /** Each member's fraction of the key space. */
  share: Record<string, number>;
};

export type ReplicaProgress = { queued: number; inflight: number; deferred: number; behind: number };
export type CopyProgress = { kind: 'join' | 'leave'; phase: 'bulk' | 'tail'; users: number; entries: number; ms: number; perSecond: number };

export type ClusterBody = {
  node: string;
  state?: string;
  insecure?: boolean;
  joined?: boolean;
  majority?: boolean;
  lease?: boolean;
  members?: { name: string; url: string; state: MemberState; incarnation: number }[];
  ring?: { version: string; vnodes: number; replicas: number; members: string[] };
  owned?: number;
  migrations?: {
    replicationQueued: number;
    replicationBehind: number;
    replication: Record<string, ReplicaProgress>;
    handoffsOut: string[];
    copying: CopyProgress | null;
  };
  groups?: { owned: number; fanoutBehind: number; pumping: number };
  connections?: number;
  sessions?: number;
  online?: number;
  traffic?: { messages: number; peerBytesIn: number; peerBytesOut: number };
};

export type NodeStats = {
  name: string;
  url: string;
  /** Its state as the serving node sees it. */
  member: MemberState;
  reachable: boolean;
  ms?: number;
  error?: string;
  cluster?: ClusterBody;
};

export type Stats = { at: number; via: string; ring: { version: string }; nodes: NodeStats[] };
