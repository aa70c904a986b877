// The contract each system's adapter fulfils, and the list of them. An adapter has two halves:
// `start` runs in the orchestrator (servers up, fresh, on free ports), `connect` in a load worker
// (one user's connection). Adapters load lazily, so a worker never loads another system's client.
import type { SystemName } from './shape.ts';

/** One server process, for its CPU seconds. */
export type ServerProc = { name: string; pid: number };

export type Started = {
  /** Where clients connect, one per node. */
  endpoints: string[];
  /** Every server process of the system (nodes, brokers): their CPU is the system's cost. */
  procs: ServerProc[];
  /** What the system itself says after the load (stream state, nodes' warnings); optional. */
  inspect?(): Promise<Record<string, unknown>>;
  /** Stops every process by its PID and removes the run's folder. Safe to call twice. */
  stop(): Promise<void>;
};

export type StartCtx = { nodes: number; say: (line: string) => void };

/** What a connection reports to the load worker. */
export type Hooks = {
  /** A message for this user, as the system delivered it (the worker sorts out whose). */
  onBody(body: string): void;
  /** The system's own ack of one send (im: `sent`; Socket.IO: the emit ack; NATS: the PubAck). */
  onAck(): void;
  /** A send that the system refused for good (after the adapter's own retries). */
  onSendError(why: string): void;
  /** Something went wrong that ends nothing (an error on a subscription): counted, reported. */
  onError(why: string): void;
  onClose(why: string): void;
};

export type Link = {
  /** `id` is unique per send in the run: the systems that deduplicate use it (im's cid, Nats-Msg-Id). */
  send(body: string, id: string): void;
  close(): void;
};

export type UserCtx = { uid: number; partner: number; endpoint: string; run: string; ackEvery: number };

export type Adapter = {
  /** One line on what the system does with a message before its ack, for the report. */
  about: string;
  start(ctx: StartCtx): Promise<Started>;
  connect(u: UserCtx, hooks: Hooks): Promise<Link>;
};

export async function adapter(name: SystemName): Promise<Adapter> {
  switch (name) {
    case 'im':
      return (await import('./im.ts')).im;
    case 'sio-redis':
      return (await import('./sio-redis.ts')).sioRedis;
    case 'nats-js':
      return (await import('./nats.ts')).natsJs;
    case 'nats-core':
      return (await import('./nats.ts')).natsCore;
  }
}
