// A call on a key's home: it runs on this node when it is the key's home, else it goes to the
// home peer to peer; on a stale ring or a lost peer it is retried until the deadline, in the
// order of the caller's lane. Private to src/cluster (see router.ts).
import { parsePeerReply } from '../protocol/peer.ts';
import type { HomeCall, PeerReply, PeerRequest } from '../protocol/peer.ts';
import { errorOf, UnavailableError } from '../protocol/errors.ts';
import type { Lane, LaneTurn } from '../gateway/lane.ts';
import { callEntry, checkValue } from './home-calls.ts';
import type { RouterContext } from './router-context.ts';

/** One attempt at the home peer: its checked value, or why it is to be retried. */
type Asked = { value: unknown } | { retry: string };

export class HomeCaller {
  #x: RouterContext;

  constructor(x: RouterContext) {
    this.#x = x;
  }

  /** Runs `hc` on its key's home, retrying on a stale ring or a lost peer until the deadline. */
  async call<T>(hc: HomeCall, lane?: Lane): Promise<T> {
    const turn = lane?.open(hc.fn === 'send' || hc.fn === 'gsend');
    try {
      return await this.#attempts<T>(callEntry(hc).key(hc), hc, lane, turn);
    } finally {
      if (turn) lane!.close(turn);
    }
  }

  async #attempts<T>(key: string, hc: HomeCall, lane: Lane | undefined, turn: LaneTurn | undefined): Promise<T> {
    const { c, clock, self } = this.#x;
    let last = 'no owner';
    const deadline = clock.now() + this.#x.deadlineMs;
    for (let i = 0; i === 0 || clock.now() < deadline; i++) {
      if (i > 0) {
        if (turn) lane!.retrying(turn);
        c.onForward?.('retry');
        if (!(await this.#x.pause())) throw new UnavailableError(`the home of ${key} is not reachable (${last}; this node is stopping)`);
      }
      if (!c.joined()) {
        last = 'this node has not joined the cluster yet';
        continue;
      }
      let ring = c.ring();
      let owner = ring.owner(key);
      if (owner === undefined) continue;
      // In the lane's order: wait until every earlier call of the connection goes the same way.
      while (turn) {
        await lane!.admit(turn, owner);
        ring = c.ring();
        const now = ring.owner(key);
        if (now === owner || now === undefined) break;
        owner = now;
      }
      // A send carries the mark its lane gave it as it let it go: a refusal moves the lane to the
      // next epoch.
      const call = lane && (hc.fn === 'send' || hc.fn === 'gsend') ? { ...hc, at: lane.markOf(turn!) } : hc;
      const at = 'at' in call ? call.at : undefined;
      if (owner === self) {
        try {
          return (await callEntry(call).run(this.#x.side, call)) as T;
        } catch (e) {
          if (!(at && e instanceof UnavailableError)) throw e;
          // A send refused here goes again from its turn, as one a home elsewhere refused does.
          // Answered to the client instead, it would come back behind the connection's later
          // sends, which its lane, in the next epoch, lets through meanwhile.
          lane!.refused(at);
          last = `${self}: ${e.message}`;
          continue;
        }
      }
      const peer = c.peerOf(owner);
      if (!peer) {
        last = `no address for ${owner}`;
        continue;
      }
      const r = await this.#ask(peer, owner, { t: 'call', key, rv: ring.version, hops: 0, call }, deadline);
      if ('value' in r) return r.value as T;
      if (at) lane!.refused(at);
      last = r.retry;
    }
    throw new UnavailableError(`the home of ${key} is not reachable (${last})`);
  }

  /** Sends the call to its home peer. Throws the error the home answered with (a client error,
   * forbidden) or a malformed or internal answer; not_owner and unavailable are retried. */
  async #ask(peer: string, owner: string, req: Extract<PeerRequest, { t: 'call' }>, deadline: number): Promise<Asked> {
    const c = this.#x.c;
    c.onForward?.('forward');
    let reply: PeerReply;
    try {
      reply = parsePeerReply(await c.link.request(peer, req, { timeoutMs: this.#x.left(deadline) }));
    } catch (e) {
      return { retry: `${owner}: ${(e as Error).message}` };
    }
    if (reply.t === 'done') {
      if (!checkValue(req.call.fn, reply.value)) throw new Error(`malformed ${req.call.fn} reply from ${owner}`);
      return { value: reply.value };
    }
    if (reply.code === 'not_owner' || reply.code === 'unavailable') return { retry: `${owner}: ${reply.message}` };
    if (reply.code === 'internal') throw new Error(`${owner} answered ${reply.code}: ${reply.message}`);
    throw errorOf(reply.code, reply.message);
  }
}
