// The one table of who serves each peer request type: membership registers its own (join, ping,
// members, probe), the router its calls and deliveries, the wiring the data moves (handoff,
// absorb, replicate). Authorization runs before it (cluster.ts, peer-auth.ts); the table only
// routes a request that passed to its handler.
import type { PeerReply, PeerRequest } from '../protocol/peer.ts';

/** Serves one request: `fromName` is the sender's member name (undefined for a node that is not
 * a live member yet), `peer` its authenticated libp2p peer id. */
export type PeerHandler<R extends PeerRequest = PeerRequest> = (fromName: string | undefined, req: R, peer: string) => Promise<PeerReply>;

export type PeerDispatch = {
  /** The handler of type `t`; one per type (a second one for a type is a wiring mistake and throws). */
  on<T extends PeerRequest['t']>(t: T, handler: PeerHandler<Extract<PeerRequest, { t: T }>>): void;
  /** Serves the types nobody registered: the handler given to `cluster.onRequest`, kept for wiring
   * that dispatches by itself. Without one, such a request is answered unavailable ('starting'). */
  otherwise(handler: PeerHandler): void;
  /** Whether a handler is registered for `t`. */
  has(t: string): boolean;
  handle(fromName: string | undefined, req: PeerRequest, peer: string): Promise<PeerReply>;
};

// Until the node has wired its handlers, a request is answered as by a node that is starting:
// callers retry on unavailable.
const starting: PeerHandler = async () => ({ t: 'fail', code: 'unavailable', message: 'starting' });

export function createPeerDispatch(): PeerDispatch {
  const handlers = new Map<string, PeerHandler>();
  let rest: PeerHandler = starting;
  return {
    on(t, handler) {
      if (handlers.has(t)) throw new Error(`peer request type '${t}' already has a handler`);
      handlers.set(t, handler as PeerHandler);
    },
    otherwise(handler) {
      rest = handler;
    },
    has: (t) => handlers.has(t),
    async handle(fromName, req, peer) {
      return (handlers.get(req.t) ?? rest)(fromName, req, peer);
    },
  };
}
