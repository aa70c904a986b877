// The libp2p host: TCP, noise, yamux, a private network by pre-shared key, fast hang detection,
// and nothing else (libp2p 3 starts no services unless asked: no identify, no ping handler).
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { ConnectionProtector, PrivateKey } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { noiseCrypto } from './noise-crypto.ts';

// libp2p refuses more than 5 inbound connections per second per remote host by default; a cluster
// on one machine, or nodes restarting together, would trip it. The pre-shared key is our gate.
const INBOUND_PER_SECOND = 1000;
const MAX_PENDING_INBOUND = 128;
const MAX_STREAM_WINDOW = 1 << 20;
const PNET_CHUNK = 64 * 1024;

export type HostInit = {
  privateKey: PrivateKey;
  host: string;
  port: number;
  psk: Uint8Array;
  pingIntervalMs: number;
};

/** pnet's protector, with writes encrypted in pieces of at most PNET_CHUNK bytes. Unchanged,
 * it encrypts whatever piled up while TCP was saturated in one xsalsa20 call, and that call
 * throws (uncaught: the process dies) once the backlog passes about 48 MB. */
function chunkedPsk(psk: Uint8Array): () => ConnectionProtector {
  const make = preSharedKey({ psk });
  return () => {
    const inner = make();
    const protect = inner.protect.bind(inner);
    inner.protect = async (connection, options) => {
      const conn = await protect(connection, options);
      (conn as { maxMessageSize?: number }).maxMessageSize = PNET_CHUNK;
      return conn;
    };
    return inner;
  };
}

/** /ip4/… or /ip6/… (brackets optional) for a listen host; localhost is 127.0.0.1. */
function listenAddr(host: string): string {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return '/ip4/127.0.0.1';
  return h.includes(':') ? `/ip6/${h}` : `/ip4/${h}`;
}

/** A host that is configured but not started, so that handlers are in place before it listens. */
export function createHost(init: HostInit): Promise<Libp2p> {
  return createLibp2p({
    start: false,
    privateKey: init.privateKey,
    addresses: { listen: [`${listenAddr(init.host)}/tcp/${init.port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    // Each stream's window bounds what sits in the connection's buffers while TCP is saturated:
    // pnet then encrypts its whole backlog in one xsalsa20 call, which fails (and kills the
    // process) past about 48 MB. yamux lets windows grow to 16 MiB; 1 MiB is plenty on a LAN.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: MAX_STREAM_WINDOW } })],
    connectionProtector: chunkedPsk(init.psk),
    // The monitor pings /ipfs/ping/1.0.0; "protocol not supported" still proves the peer alive, so no
    // ping service is needed. Interval and timeout both short: a hung peer is dropped in about 2 s.
    connectionMonitor: { pingInterval: init.pingIntervalMs, pingTimeout: { minTimeout: init.pingIntervalMs } },
    connectionManager: { inboundConnectionThreshold: INBOUND_PER_SECOND, maxIncomingPendingConnections: MAX_PENDING_INBOUND },
  });
}
