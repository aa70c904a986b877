// The node's settings: parsed and validated once, at the edge, from flags and IM_* variables.
import { networkInterfaces } from 'node:os';
import type { NetworkInterfaceInfo } from 'node:os';
import { parseArgs } from 'node:util';

export type Config = {
  name: string;
  data: string;
  host: string;
  port: number;
  /** The client URL this node advertises (goaway, /cluster); derived from host and port unless given. */
  publicUrl?: string;
  p2pPort: number;
  /** libp2p listen address; parseConfig sets it to `host` when not given. */
  p2pHost: string;
  /** HOST or HOST:PORT ([v6]:PORT) peers dial for this node's peer port; when unset, the p2p listen
   * host, or for a wildcard one this machine's first non-internal IPv4 (see advertisedHost). */
  announce?: string;
  /** libp2p private-network key file shared by the cluster; generated into DATA/swarm.key when absent. */
  pskFile?: string;
  join: string[];
  vnodes: number;
  replicas: number;
  /** Membership: no heartbeat for this long → suspect; a suspect not refuted this long → dead. */
  suspectAfterMs: number;
  confirmTimeoutMs: number;
  insecure: boolean;
  secret?: string;
  /** Longest token life accepted, in seconds (exp - iat, or exp - now without iat). */
  maxTokenLifeS: number;
  /** When set, tokens must carry this `aud` / `iss`. */
  tokenAudience?: string;
  tokenIssuer?: string;
  /** When set, /cluster and /metrics require `Authorization: Bearer <adminToken>`. */
  adminToken?: string;
  maxFrame: number;
  maxBody: number;
  maxUsers: number;
  /** Members one group may have (and one request may name). */
  maxMembers: number;
  /** Per user: friends, requests made and follows; incoming requests waiting; bytes of the
   * profile's custom fields as JSON. */
  maxContacts: number;
  maxPendingRequests: number;
  maxProfileFields: number;
  /** Per group, at its home: posts per second (and burst), log entries and bytes of member
   * copies not yet fanned out past which posts are refused, typing frames per second, and
   * membership events between two member snapshots of its log. */
  groupRate: number;
  groupBurst: number;
  groupBacklog: number;
  groupBacklogBytes: number;
  groupTypingFrames: number;
  groupSnapshotEvents: number;
  loginTimeoutMs: number;
  idleTimeoutMs: number;
  presenceTimeoutMs: number;
  rate: number;
  rateBurst: number;
  /** Bytes queued to one client beyond which the node drops it (it reconnects and replays). */
  maxBuffered: number;
  /** Requests of one connection being served at once (rate_limited past it). */
  maxInFlight: number;
  /** Client connections this node holds (goaway full past it); capped below the open-file limit. */
  maxConnections: number;
  /** Devices of one user online at once (a login past it: too_large). */
  maxDevices: number;
  /** Users one connection watches in all (a watch past it: too_large). */
  maxWatched: number;
  /** Bytes of bodies in one sync or history page (cut with more: true). */
  maxReadBytes: number;
  /** Send queue per peer, in envelopes and bytes: past it requests wait (then fail), one-way messages drop. */
  peerQueueMsgs: number;
  peerQueueBytes: number;
  sync: 'normal' | 'full';
  logLevel: string;
};

export const DEFAULTS: Config = {
  name: 'node-1',
  data: './data',
  host: '127.0.0.1',
  port: 7001,
  p2pPort: 9001,
  p2pHost: '127.0.0.1',
  join: [],
  vnodes: 160,
  replicas: 2,
  suspectAfterMs: 2000,
  confirmTimeoutMs: 3000,
  insecure: false,
  maxTokenLifeS: 30 * 24 * 3600,
  maxFrame: 65536,
  maxBody: 16384,
  maxUsers: 500,
  maxMembers: 10_000,
  maxContacts: 5000,
  maxPendingRequests: 1000,
  maxProfileFields: 2048,
  groupRate: 200,
  groupBurst: 400,
  groupBacklog: 1000,
  groupBacklogBytes: 8 * 1024 * 1024,
  groupTypingFrames: 10_000,
  groupSnapshotEvents: 256,
  loginTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  presenceTimeoutMs: 15_000,
  rate: 200,
  rateBurst: 400,
  maxBuffered: 8 * 1024 * 1024,
  maxInFlight: 64,
  maxConnections: 20_000,
  maxDevices: 32,
  maxWatched: 5000,
  maxReadBytes: 1024 * 1024,
  peerQueueMsgs: 65_536,
  peerQueueBytes: 32 * 1024 * 1024,
  sync: 'normal',
  logLevel: 'info',
};

// flag name -> [environment variable, kind, config key]
const FIELDS = {
  name: ['IM_NAME', 'string', 'name'],
  data: ['IM_DATA', 'string', 'data'],
  host: ['IM_HOST', 'string', 'host'],
  port: ['IM_WS_PORT', 'port', 'port'],
  'public-url': ['IM_PUBLIC_URL', 'string', 'publicUrl'],
  'p2p-port': ['IM_P2P_PORT', 'port', 'p2pPort'],
  'p2p-host': ['IM_P2P_HOST', 'string', 'p2pHost'],
  announce: ['IM_ANNOUNCE', 'string', 'announce'],
  'psk-file': ['IM_PSK_FILE', 'string', 'pskFile'],
  vnodes: ['IM_VNODES', 'int', 'vnodes'],
  replicas: ['IM_REPLICAS', 'int', 'replicas'],
  'suspect-after': ['IM_SUSPECT_AFTER', 'int', 'suspectAfterMs'],
  'confirm-timeout': ['IM_CONFIRM_TIMEOUT', 'int', 'confirmTimeoutMs'],
  secret: ['IM_SECRET', 'string', 'secret'],
  'max-token-life': ['IM_MAX_TOKEN_LIFE', 'int', 'maxTokenLifeS'],
  'token-audience': ['IM_TOKEN_AUDIENCE', 'string', 'tokenAudience'],
  'token-issuer': ['IM_TOKEN_ISSUER', 'string', 'tokenIssuer'],
  'admin-token': ['IM_ADMIN_TOKEN', 'string', 'adminToken'],
  'max-frame': ['IM_MAX_FRAME', 'int', 'maxFrame'],
  'max-body': ['IM_MAX_BODY', 'int', 'maxBody'],
  'max-members': ['IM_MAX_MEMBERS', 'int', 'maxMembers'],
  'max-contacts': ['IM_MAX_CONTACTS', 'int', 'maxContacts'],
  'max-pending-requests': ['IM_MAX_PENDING_REQUESTS', 'int', 'maxPendingRequests'],
  'max-profile-fields': ['IM_MAX_PROFILE_FIELDS', 'int', 'maxProfileFields'],
  'group-rate': ['IM_GROUP_RATE', 'int', 'groupRate'],
  'group-burst': ['IM_GROUP_BURST', 'int', 'groupBurst'],
  'group-backlog': ['IM_GROUP_BACKLOG', 'int', 'groupBacklog'],
  'group-backlog-bytes': ['IM_GROUP_BACKLOG_BYTES', 'int', 'groupBacklogBytes'],
  'group-typing-frames': ['IM_GROUP_TYPING_FRAMES', 'int', 'groupTypingFrames'],
  'group-snapshot-events': ['IM_GROUP_SNAPSHOT_EVENTS', 'int', 'groupSnapshotEvents'],
  'login-timeout': ['IM_LOGIN_TIMEOUT', 'int', 'loginTimeoutMs'],
  'idle-timeout': ['IM_IDLE_TIMEOUT', 'int', 'idleTimeoutMs'],
  'presence-timeout': ['IM_PRESENCE_TIMEOUT', 'int', 'presenceTimeoutMs'],
  rate: ['IM_RATE', 'int', 'rate'],
  'rate-burst': ['IM_RATE_BURST', 'int', 'rateBurst'],
  'max-buffered': ['IM_MAX_BUFFERED', 'int', 'maxBuffered'],
  'max-in-flight': ['IM_MAX_IN_FLIGHT', 'int', 'maxInFlight'],
  'max-connections': ['IM_MAX_CONNECTIONS', 'int', 'maxConnections'],
  'max-devices': ['IM_MAX_DEVICES', 'int', 'maxDevices'],
  'max-watched': ['IM_MAX_WATCHED', 'int', 'maxWatched'],
  'max-read-bytes': ['IM_MAX_READ_BYTES', 'int', 'maxReadBytes'],
  'peer-queue-msgs': ['IM_PEER_QUEUE_MSGS', 'int', 'peerQueueMsgs'],
  'peer-queue-bytes': ['IM_PEER_QUEUE_BYTES', 'int', 'peerQueueBytes'],
  sync: ['IM_SYNC', 'sync', 'sync'],
  'log-level': ['IM_LOG_LEVEL', 'string', 'logLevel'],
} as const;

export const USAGE = `usage: im-node [options]   (every option also reads the IM_* variable shown)
  --name NAME              node name, unique in the cluster        IM_NAME (node-1)
  --data DIR               data directory (database, secret)       IM_DATA (./data)
  --host HOST              client listen address                   IM_HOST (127.0.0.1)
  --port N                 client port, HTTP and /ws (0 = any)     IM_WS_PORT (7001)
  --public-url URL         client URL to advertise                 IM_PUBLIC_URL (ws://HOST:PORT/ws; for a
                           wildcard HOST, this machine's first non-internal IPv4)
  --p2p-port N             peer port (libp2p over TCP; 0 = any)    IM_P2P_PORT (9001)
  --p2p-host HOST          peer listen address                     IM_P2P_HOST (HOST)
  --announce HOST[:PORT]   address peers dial for the peer port    IM_ANNOUNCE (P2P-HOST; for a
                           wildcard one, this machine's first non-internal IPv4)
  --psk-file FILE          the cluster's private network key       IM_PSK_FILE (DATA/swarm.key, generated)
  --join MULTIADDR         a running node's peer address (repeatable); none = start a new cluster
  --vnodes N               virtual nodes per member on the ring    IM_VNODES (160)
  --replicas N             copies of each timeline (R)             IM_REPLICAS (2)
  --suspect-after MS       no heartbeat this long → suspect        IM_SUSPECT_AFTER (2000)
  --confirm-timeout MS     suspect not refuted this long → dead    IM_CONFIRM_TIMEOUT (3000)
  --insecure               accept {"user":…} logins without a token (development only;
                           --host must be loopback)                IM_INSECURE=1
  --secret S               HS256 token secret, at least 32 bytes   IM_SECRET (generated into DATA/secret)
  --max-token-life S       longest token life accepted (exp - iat) IM_MAX_TOKEN_LIFE (2592000 = 30 days)
  --token-audience AUD     tokens must carry aud AUD               IM_TOKEN_AUDIENCE (not checked)
  --token-issuer ISS       tokens must carry iss ISS               IM_TOKEN_ISSUER (not checked)
  --admin-token T          /cluster and /metrics need "Authorization: Bearer T" (16 bytes or more)
                                                                   IM_ADMIN_TOKEN (open)
  --max-frame BYTES        largest client frame (close 1009)       IM_MAX_FRAME (65536)
  --max-body BYTES         largest message body (too_large)        IM_MAX_BODY (16384)
  --max-members N          members of one group (too_large)        IM_MAX_MEMBERS (10000)
  --max-contacts N         friends, requests made and follows per user (too_large)  IM_MAX_CONTACTS (5000)
  --max-pending-requests N incoming contact requests waiting per user (too_large)  IM_MAX_PENDING_REQUESTS (1000)
  --max-profile-fields N   bytes of a profile's custom fields as JSON (too_large)  IM_MAX_PROFILE_FIELDS (2048)
  --group-rate N           messages/s into one group (rate_limited) IM_GROUP_RATE (200)
  --group-burst N          burst allowance per group               IM_GROUP_BURST (400)
  --group-backlog N        group messages not yet fanned out       IM_GROUP_BACKLOG (1000)
  --group-backlog-bytes B  their member copies, (body+256)×members IM_GROUP_BACKLOG_BYTES (8388608)
  --group-typing-frames N  typing frames/s one group may push      IM_GROUP_TYPING_FRAMES (10000)
  --group-snapshot-events N  events between member snapshots     IM_GROUP_SNAPSHOT_EVENTS (256)
  --login-timeout MS       time allowed before login               IM_LOGIN_TIMEOUT (10000)
  --idle-timeout MS        close after this long without a frame   IM_IDLE_TIMEOUT (60000)
  --presence-timeout MS    sessions of a dead gateway expire       IM_PRESENCE_TIMEOUT (15000)
  --rate N                 requests per second per connection      IM_RATE (200)
  --rate-burst N           burst allowance per connection          IM_RATE_BURST (400)
  --max-buffered BYTES     drop a client this far behind           IM_MAX_BUFFERED (8388608)
  --max-in-flight N        requests one connection has open        IM_MAX_IN_FLIGHT (64)
  --max-connections N      client connections (goaway full)        IM_MAX_CONNECTIONS (20000, capped by open files)
  --max-devices N          devices of one user online at once      IM_MAX_DEVICES (32)
  --max-watched N          users one connection watches in all     IM_MAX_WATCHED (5000)
  --max-read-bytes BYTES   bodies in one sync/history page         IM_MAX_READ_BYTES (1048576)
  --peer-queue-msgs N      send queue per peer, envelopes          IM_PEER_QUEUE_MSGS (65536)
  --peer-queue-bytes BYTES send queue per peer, bytes              IM_PEER_QUEUE_BYTES (33554432)
  --sync normal|full       SQLite synchronous mode                 IM_SYNC (normal)
  --log-level LEVEL        pino level                              IM_LOG_LEVEL (info)
`;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseConfig(argv: string[], env: Record<string, string | undefined>): Config {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    insecure: { type: 'boolean' },
    join: { type: 'string', multiple: true },
    help: { type: 'boolean' },
  };
  for (const k of Object.keys(FIELDS)) options[k] = { type: 'string' };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (values.help) throw new ConfigError('help');
  const cfg: Config = { ...DEFAULTS, join: [...((values.join as string[] | undefined) ?? [])] };
  const out = cfg as Record<string, unknown>;
  for (const [flag, [envName, kind, key]] of Object.entries(FIELDS)) {
    const raw = (values[flag] as string | undefined) ?? env[envName];
    if (raw === undefined || raw === '') continue;
    if (kind === 'string') out[key] = raw;
    else if (kind === 'sync') {
      if (raw !== 'normal' && raw !== 'full') throw new ConfigError(`--${flag} must be normal or full`);
      out[key] = raw;
    } else {
      const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
      const max = kind === 'port' ? 65535 : Number.MAX_SAFE_INTEGER;
      const min = kind === 'port' ? 0 : 1;
      if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`--${flag} (${envName}) must be an integer from ${min} to ${max}, got '${raw}'`);
      out[key] = n;
    }
  }
  if (values['p2p-host'] === undefined && !env.IM_P2P_HOST) cfg.p2pHost = cfg.host;
  if (cfg.announce !== undefined) parseHostPort(cfg.announce, '--announce (IM_ANNOUNCE)');
  cfg.insecure = values.insecure === true || env.IM_INSECURE === '1' || env.IM_INSECURE === 'true';
  if (cfg.secret !== undefined) checkSecret(cfg.secret, '--secret (IM_SECRET)');
  if (cfg.insecure && !isLoopback(cfg.host)) {
    throw new ConfigError(`--insecure (IM_INSECURE) is for local development only: it needs a loopback --host (127.0.0.1, ::1 or localhost), got '${cfg.host}'`);
  }
  if (cfg.adminToken !== undefined && Buffer.byteLength(cfg.adminToken) < MIN_ADMIN_TOKEN_BYTES) {
    throw new ConfigError(`--admin-token (IM_ADMIN_TOKEN) must be at least ${MIN_ADMIN_TOKEN_BYTES} bytes`);
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cfg.name)) throw new ConfigError('--name must be 1 to 64 characters from A-Z a-z 0-9 _ . -');
  return cfg;
}

export const MIN_SECRET_BYTES = 32;
const MIN_ADMIN_TOKEN_BYTES = 16;

/** A shorter HS256 secret can be guessed offline from any one token. */
export function checkSecret(secret: string, where: string): void {
  const n = Buffer.byteLength(secret);
  if (n < MIN_SECRET_BYTES) {
    throw new ConfigError(`${where} is ${n} bytes; a token secret must be at least ${MIN_SECRET_BYTES} bytes (for example: openssl rand -hex 32)`);
  }
}

/** Addresses only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) && v4.split('.').every((p) => Number(p) <= 255);
}

/** Listen on every interface: 0.0.0.0, :: (also bracketed), or empty. */
export function isWildcard(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return h === '' || h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}

/** The host others should use to reach a port listening on `listenHost`: that host itself, or for
 * a wildcard one this machine's first non-internal IPv4, or 127.0.0.1 when it has none. */
export function advertisedHost(listenHost: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string {
  if (!isWildcard(listenHost)) return listenHost;
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** HOST, HOST:PORT, [V6] or [V6]:PORT (a bare IPv6 address has no port). Hosts are IP addresses
 * or DNS names; a wildcard is refused, as nobody can dial it. */
export function parseHostPort(raw: string, where: string): { host: string; port?: number } {
  const bad = () => new ConfigError(`${where} must be HOST or HOST:PORT with an address or name peers can dial, got '${raw}'`);
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(raw);
  let host: string;
  let port: string | undefined;
  if (v6) [host, port] = [v6[1]!, v6[2]];
  else if ((raw.match(/:/g) ?? []).length > 1) host = raw; // a bare IPv6 address
  else [host, port] = raw.split(':') as [string, string | undefined];
  const valid = host.includes(':') ? /^[0-9A-Fa-f:.]+$/.test(host) : /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(host);
  if (!valid || isWildcard(host)) throw bad();
  if (port === undefined) return { host };
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new ConfigError(`${where}: the port must be from 1 to 65535, got '${port}'`);
  return { host, port: n };
}
