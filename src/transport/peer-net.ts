// The peer transport: one libp2p host per node, long-lived streams per peer multiplexed by request
// id. Owns the public operations, the links to peers and the streams' lifecycle; what comes in on
// a stream is inbound.ts's pipeline.
import { setMaxListeners } from 'node:events';
import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import type { Logger } from 'pino';
import { systemClock } from '../clock/index.ts';
import type { Clock } from '../clock/index.ts';
import { encodeMessage, fitsFrame, PEER_PROTOCOL, requestEnv, toJson } from './envelope.ts';
import { PeerGoneError, PeerMessageError, PeerTimeoutError } from './errors.ts';
import { createHost } from './host.ts';
import { loadOrCreateKey } from './identity.ts';
import { Inbound } from './inbound.ts';
import type { Handlers } from './inbound.ts';
import { Link } from './link.ts';
import type { PeerMsg, PeerNet, PeerNetComponents, PeerNetInit, PeerStats } from './index.ts';
import { Requests } from './requests.ts';

export const DEFAULT_HOST = '127.0.0.1';
export const DIAL_TIMEOUT_MS = 3000;
export const REQUEST_TIMEOUT_MS = 5000;
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
export const PING_INTERVAL_MS = 1000;
export const MAX_QUEUE_MSGS = 65_536;
export const MAX_QUEUE_BYTES = 32 * 1024 * 1024;
// Streams of our protocol per connection: normally one or two (both sides opening at once).
const MAX_STREAMS = 256;

export type Settings = Required<Omit<PeerNetInit, 'dataDir' | 'psk' | 'announce'>> & Pick<PeerNetInit, 'announce'>;
export type QueueFull = 'waited' | 'timeout' | 'dropped';

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** /ip4/…, /ip6/… or /dns/… for a host given as an address or a name. */
function hostAddr(host: string): string {
  if (host.includes(':')) return `/ip6/${host}`;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) ? `/ip4/${host}` : `/dns/${host}`;
}

function withoutPeerId(ma: Multiaddr): Multiaddr {
  return ma.getComponents().some((c) => c.code === CODE_P2P) ? ma.decapsulateCode(CODE_P2P) : ma;
}

/** Exported for the transport's unit tests (over a stand-in libp2p); the public factory is createPeerNet. */
export class PeerNetImpl implements PeerNet {
  readonly peerId: string;
  #node: Libp2p;
  #log: Logger;
  #cfg: Settings;
  #clock: Clock;
  #onQueueFull: (kind: QueueFull) => void;
  #links = new Map<string, Link>();
  #requests: Requests;
  #handlers: Handlers = { peer: [] };
  #shutdown = new AbortController();
  #inbound: Inbound;
  #signal: AbortSignal | undefined;
  #stopped: Promise<void> | undefined;
  // addAddrs writes the peer store asynchronously; a lazy dial waits for the write.
  #addrWrites = new Map<string, Promise<void>>();

  constructor(node: Libp2p, cfg: Settings, components: PeerNetComponents) {
    this.#node = node;
    this.#cfg = cfg;
    this.#log = components.log;
    this.#clock = components.clock ?? systemClock;
    this.#onQueueFull = components.onQueueFull ?? (() => undefined);
    this.#requests = new Requests(this.#clock);
    this.peerId = node.peerId.toString();
    // Every wait in every link listens on it.
    setMaxListeners(Infinity, this.#shutdown.signal);
    this.#inbound = new Inbound({
      maxFrameBytes: cfg.maxFrameBytes, log: this.#log, requests: this.#requests, handlers: this.#handlers, signal: this.#shutdown.signal,
    });
    this.#signal = components.signal;
  }

  /** The node's signal, if it gave one: its abort is a stop() (followed once started, so that an
   * early abort does not leave libp2p started after it). */
  #stopOn(signal: AbortSignal | undefined): void {
    if (!signal) return;
    const stop = (): void => {
      this.stop().catch((e: unknown) => this.#log.error({ err: errText(e) }, 'peer net stop failed'));
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  }

  // The announce address is applied here rather than as libp2p's addresses.announce: its port may
  // be the one the OS chose (--p2p-port 0), known only once listening, and with no identify
  // service libp2p tells nobody its addresses: the node's gossip of `addrs` is what peers dial.
  get addrs(): string[] {
    const a = this.#cfg.announce;
    if (!a) return this.listening;
    const port = a.port ?? (this.#cfg.port || Number(/\/tcp\/(\d+)/.exec(this.listening[0] ?? '')?.[1]));
    return [`${hostAddr(a.host)}/tcp/${port}/p2p/${this.peerId}`];
  }

  get listening(): string[] {
    return this.#node.getMultiaddrs().map((a) => a.toString());
  }

  async start(): Promise<void> {
    await this.#node.handle(PEER_PROTOCOL, (stream, conn) => this.#accept(stream, conn), {
      maxInboundStreams: MAX_STREAMS,
      maxOutboundStreams: MAX_STREAMS,
    });
    this.#node.addEventListener('peer:connect', (e) => this.#peerEvent(e.detail.toString(), true));
    this.#node.addEventListener('peer:disconnect', (e) => this.#peerEvent(e.detail.toString(), false));
    await this.#node.start();
    this.#stopOn(this.#signal);
  }

  async dial(addr: string, signal?: AbortSignal): Promise<string> {
    const ma = multiaddr(addr);
    const timeout = AbortSignal.timeout(this.#cfg.dialTimeoutMs);
    const signals = [timeout, this.#shutdown.signal];
    if (signal) signals.push(signal);
    let conn: Connection;
    try {
      conn = await this.#node.dial(ma, { signal: AbortSignal.any(signals) });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (this.#shutdown.signal.aborted) throw new PeerGoneError(addr, 'peer net stopped');
      if (timeout.aborted) throw new PeerTimeoutError(addr, `dial ${addr} timed out after ${this.#cfg.dialTimeoutMs} ms`);
      throw new PeerGoneError(addr, `dial ${addr} failed: ${errText(e)}`, { cause: e });
    }
    const peer = conn.remotePeer.toString();
    // Remember the address so that a later send can redial it.
    this.addAddrs(peer, [withoutPeerId(ma).toString()]);
    return peer;
  }

  addAddrs(peer: string, addrs: string[]): void {
    let id;
    try {
      id = peerIdFromString(peer);
    } catch {
      this.#log.warn({ peer }, 'addAddrs: not a peer id');
      return;
    }
    const mas: Multiaddr[] = [];
    for (const a of addrs) {
      try {
        mas.push(withoutPeerId(multiaddr(a)));
      } catch {
        this.#log.warn({ peer, addr: a }, 'addAddrs: not a multiaddr');
      }
    }
    if (mas.length === 0) return;
    const prev = this.#addrWrites.get(peer) ?? Promise.resolve();
    const write = prev
      .then(() => this.#node.peerStore.merge(id, { multiaddrs: mas }))
      .then(
        () => undefined,
        (e: unknown) => this.#log.warn({ peer, err: errText(e) }, 'could not store peer addresses'),
      );
    this.#addrWrites.set(peer, write);
    void write.then(() => {
      if (this.#addrWrites.get(peer) === write) this.#addrWrites.delete(peer);
    });
  }

  connected(peer: string): boolean {
    try {
      return this.#node.getConnections(peerIdFromString(peer)).some((c) => c.status === 'open');
    } catch {
      return false;
    }
  }

  send(peer: string, msg: PeerMsg): void {
    const link = this.#link(peer);
    if (!link) return;
    if (this.#shutdown.signal.aborted) {
      link.counters.dropped++;
      return;
    }
    let env: string;
    try {
      env = encodeMessage(msg);
    } catch (e) {
      link.counters.dropped++;
      this.#log.warn({ peer, t: msg?.t, err: errText(e) }, 'peer message dropped: not serialisable');
      return;
    }
    if (!fitsFrame(env, this.#cfg.maxFrameBytes)) {
      link.counters.dropped++;
      this.#log.warn({ peer, t: msg.t, chars: env.length }, 'peer message dropped: larger than maxFrameBytes');
      return;
    }
    if (!link.hasRoom()) {
      // One-way messages cannot wait (gossip and pushes are sent from synchronous code).
      link.counters.dropped++;
      link.counters.queueDrops++;
      this.#onQueueFull('dropped');
      this.#rareWarn(link, `peer message dropped: the send queue is full (${link.queuedBytes} bytes)`);
      return;
    }
    link.enqueue({ env });
  }

  request(peer: string, msg: PeerMsg, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<PeerMsg> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#shutdown.signal.aborted) return Promise.reject(new PeerGoneError(peer, 'peer net stopped'));
    const link = this.#link(peer);
    if (!link) return Promise.reject(new PeerGoneError(peer, `not a peer id: ${peer}`));
    const timeoutMs = opts.timeoutMs ?? this.#cfg.requestTimeoutMs;
    let body: string;
    try {
      body = toJson(msg);
    } catch (e) {
      return Promise.reject(new PeerMessageError(peer, `request not serialisable: ${errText(e)}`));
    }
    if (!fitsFrame(requestEnv(Number.MAX_SAFE_INTEGER, body), this.#cfg.maxFrameBytes)) {
      return Promise.reject(new PeerMessageError(peer, `request of ${body.length} characters exceeds maxFrameBytes`));
    }
    const t0 = this.#clock.now();
    let answer: Promise<PeerMsg> | undefined;
    // The request's time starts when it is asked: waiting for room in the queue counts.
    const go = (): void => {
      const left = Math.max(1, Math.min(timeoutMs, Math.round(timeoutMs - (this.#clock.now() - t0))));
      const r = this.#requests.add(peer, msg.t, left, signal);
      link.enqueue({ env: requestEnv(r.id, body), req: r.id });
      answer = r.answer;
    };
    if (link.hasRoom()) {
      go();
      return answer!;
    }
    link.counters.queueWaits++;
    this.#onQueueFull('waited');
    return link.whenRoom(go, timeoutMs, signal).then(
      () => answer!,
      (e: Error) => {
        if (e.name === 'PeerBusyError') {
          link.counters.queueTimeouts++;
          this.#onQueueFull('timeout');
          this.#rareWarn(link, e.message);
        }
        throw e;
      },
    );
  }

  #rareWarn(link: Link, msg: string): void {
    const now = this.#clock.now();
    if (now - link.lastFullWarn < 10_000) return;
    link.lastFullWarn = now;
    this.#log.warn({ peer: link.peer, queued: link.queuedBytes, waits: link.counters.queueWaits, timeouts: link.counters.queueTimeouts, drops: link.counters.queueDrops }, msg);
  }

  onMessage(h: (from: string, msg: unknown) => void): void {
    this.#handlers.message = h;
  }

  onRequest(h: (from: string, msg: unknown) => Promise<PeerMsg>): void {
    this.#handlers.request = h;
  }

  onPeer(h: (ev: { peer: string; up: boolean }) => void): void {
    this.#handlers.peer.push(h);
  }

  stats(): PeerStats[] {
    return [...this.#links.values()].map((l) => ({
      peer: l.peer,
      ...l.counters,
      queued: l.queuedChars,
      buffered: l.buffered,
    }));
  }

  // A second stop() (the node's, after its signal already stopped us) waits for the first to finish.
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#shutdown.abort();
    for (const link of this.#links.values()) link.clear(new PeerGoneError(link.peer, 'peer net stopped'));
    this.#requests.rejectAll('peer net stopped');
    await this.#node.stop();
  }

  #link(peer: string): Link | undefined {
    let link = this.#links.get(peer);
    if (link) return link;
    try {
      peerIdFromString(peer);
    } catch {
      this.#log.warn({ peer }, 'not a peer id; dropping');
      return undefined;
    }
    link = new Link({
      peer,
      maxChunkChars: Math.max(1024, Math.floor(this.#cfg.maxFrameBytes / 4)),
      maxQueueMsgs: this.#cfg.maxQueueMsgs,
      maxQueueBytes: this.#cfg.maxQueueBytes,
      log: this.#log,
      clock: this.#clock,
      signal: this.#shutdown.signal,
      hooks: {
        open: (p) => this.#open(p),
        isPending: (id) => this.#requests.has(id),
        written: (id, stream) => this.#requests.written(id, stream),
        failed: (id, err) => {
          const e = err.name.startsWith('Peer') ? err : new PeerGoneError(peer, `peer ${peer} unreachable: ${err.message}`, { cause: err });
          this.#requests.fail(id, e);
        },
      },
    });
    this.#links.set(peer, link);
    return link;
  }

  async #open(peer: string): Promise<Stream> {
    await this.#addrWrites.get(peer);
    const timeout = AbortSignal.timeout(this.#cfg.dialTimeoutMs);
    let stream: Stream;
    try {
      stream = await this.#node.dialProtocol(peerIdFromString(peer), PEER_PROTOCOL, {
        signal: AbortSignal.any([timeout, this.#shutdown.signal]),
      });
    } catch (e) {
      const why = timeout.aborted ? `timed out after ${this.#cfg.dialTimeoutMs} ms` : errText(e);
      throw new PeerGoneError(peer, `peer ${peer} unreachable: ${why}`, { cause: e });
    }
    this.#attach(peer, stream);
    return stream;
  }

  #accept(stream: Stream, conn: Connection): void {
    if (this.#shutdown.signal.aborted) {
      stream.abort(new Error('peer net stopped'));
      return;
    }
    this.#attach(conn.remotePeer.toString(), stream);
  }

  #attach(peer: string, stream: Stream): void {
    const link = this.#link(peer)!;
    link.attach(stream);
    void this.#inbound.read(link, stream);
  }

  #peerEvent(peer: string, up: boolean): void {
    if (!up) this.#requests.peerGone(peer);
    for (const h of this.#handlers.peer) {
      try {
        h({ peer, up });
      } catch (e) {
        this.#log.error({ peer, err: errText(e) }, 'peer event handler threw');
      }
    }
  }
}

export async function createPeerNetImpl(init: PeerNetInit, components: PeerNetComponents): Promise<PeerNet> {
  const { log } = components;
  const cfg: Settings = {
    host: init.host ?? DEFAULT_HOST,
    port: init.port,
    dialTimeoutMs: init.dialTimeoutMs ?? DIAL_TIMEOUT_MS,
    requestTimeoutMs: init.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    maxFrameBytes: init.maxFrameBytes ?? MAX_FRAME_BYTES,
    pingIntervalMs: init.pingIntervalMs ?? PING_INTERVAL_MS,
    maxQueueMsgs: init.maxQueueMsgs ?? MAX_QUEUE_MSGS,
    maxQueueBytes: init.maxQueueBytes ?? MAX_QUEUE_BYTES,
    ...(init.announce ? { announce: init.announce } : {}),
  };
  const privateKey = await loadOrCreateKey(init.dataDir, log);
  const node = await createHost({ privateKey, host: cfg.host, port: cfg.port, psk: init.psk, pingIntervalMs: cfg.pingIntervalMs });
  const net = new PeerNetImpl(node, cfg, components);
  try {
    await net.start();
  } catch (e) {
    await Promise.resolve(node.stop()).catch(() => undefined);
    throw e;
  }
  log.info({ peerId: net.peerId, listening: net.listening, addrs: net.addrs }, 'peer net listening');
  return net;
}
