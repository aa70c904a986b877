// parseConfig: defaults, env over defaults, flags over env, --join, --insecure, and ConfigError for every bad input (naming the flag) and --help.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { advertisedHost, ConfigError, DEFAULTS, isWildcard, parseConfig, parseHostPort } from '../../src/node/config.ts';
import type { Config } from '../../src/node/config.ts';

function rejects(t: ExecutionContext, argv: string[], env: Record<string, string>, mention: string): void {
  const what = `${argv.join(' ')} ${JSON.stringify(env)}`;
  const e = t.throws(() => parseConfig(argv, env), { instanceOf: ConfigError }, what);
  t.true(e?.message.includes(mention) === true, `'${e?.message}' should name ${mention} (${what})`);
  t.not(e?.message, 'help');
}

// flag -> [env variable, a value, the parsed value, config key]
const FIELDS: [string, string, string, unknown, keyof Config][] = [
  ['name', 'IM_NAME', 'n-2.b_c', 'n-2.b_c', 'name'],
  ['data', 'IM_DATA', '/var/lib/im', '/var/lib/im', 'data'],
  ['host', 'IM_HOST', '127.0.0.2', '127.0.0.2', 'host'],
  ['port', 'IM_WS_PORT', '7101', 7101, 'port'],
  ['public-url', 'IM_PUBLIC_URL', 'ws://chat.example:80/ws', 'ws://chat.example:80/ws', 'publicUrl'],
  ['p2p-port', 'IM_P2P_PORT', '9101', 9101, 'p2pPort'],
  ['p2p-host', 'IM_P2P_HOST', '10.0.0.5', '10.0.0.5', 'p2pHost'],
  ['announce', 'IM_ANNOUNCE', 'peers.example', 'peers.example', 'announce'],
  ['secret', 'IM_SECRET', 's3cret-of-at-least-thirty-two-bytes', 's3cret-of-at-least-thirty-two-bytes', 'secret'],
  ['max-token-life', 'IM_MAX_TOKEN_LIFE', '86400', 86400, 'maxTokenLifeS'],
  ['token-audience', 'IM_TOKEN_AUDIENCE', 'chat.example', 'chat.example', 'tokenAudience'],
  ['token-issuer', 'IM_TOKEN_ISSUER', 'https://login.example', 'https://login.example', 'tokenIssuer'],
  ['admin-token', 'IM_ADMIN_TOKEN', 'admin-token-0123456789', 'admin-token-0123456789', 'adminToken'],
  ['max-frame', 'IM_MAX_FRAME', '131072', 131072, 'maxFrame'],
  ['max-body', 'IM_MAX_BODY', '8192', 8192, 'maxBody'],
  ['login-timeout', 'IM_LOGIN_TIMEOUT', '5000', 5000, 'loginTimeoutMs'],
  ['idle-timeout', 'IM_IDLE_TIMEOUT', '30000', 30000, 'idleTimeoutMs'],
  ['presence-timeout', 'IM_PRESENCE_TIMEOUT', '7000', 7000, 'presenceTimeoutMs'],
  ['rate', 'IM_RATE', '50', 50, 'rate'],
  ['rate-burst', 'IM_RATE_BURST', '75', 75, 'rateBurst'],
  ['max-buffered', 'IM_MAX_BUFFERED', '1048576', 1048576, 'maxBuffered'],
  ['sync', 'IM_SYNC', 'full', 'full', 'sync'],
  ['log-level', 'IM_LOG_LEVEL', 'debug', 'debug', 'logLevel'],
];
const NUMERIC = FIELDS.filter(([, , , v]) => typeof v === 'number').map(([flag, env]) => [flag, env] as const);
const INTS = NUMERIC.filter(([flag]) => flag !== 'port' && flag !== 'p2p-port');
const PORTS = NUMERIC.filter(([flag]) => flag === 'port' || flag === 'p2p-port');

test('no flags and no env give the defaults', (t) => {
  const cfg = parseConfig([], {});
  t.deepEqual(cfg, DEFAULTS);
  t.deepEqual(cfg, {
    name: 'node-1', data: './data', host: '127.0.0.1', port: 7001, p2pPort: 9001, p2pHost: '127.0.0.1', join: [], insecure: false,
    maxFrame: 65536, maxBody: 16384, maxUsers: 500, maxMembers: 10_000, maxContacts: 5000, maxPendingRequests: 1000, maxProfileFields: 2048, loginTimeoutMs: 10_000, idleTimeoutMs: 60_000,
    presenceTimeoutMs: 15_000, rate: 200, rateBurst: 400, maxBuffered: 8 * 1024 * 1024, sync: 'normal', logLevel: 'info',
    vnodes: 160, replicas: 2, suspectAfterMs: 2000, confirmTimeoutMs: 3000, maxTokenLifeS: 30 * 24 * 3600,
    // The connection limits of docs/PROTOCOL.md, section 8.
    maxInFlight: 64, maxConnections: 20_000, maxDevices: 32, maxWatched: 5000, maxReadBytes: 1024 * 1024,
    groupRate: 200, groupBurst: 400, groupBacklog: 1000, groupBacklogBytes: 8 * 1024 * 1024, groupTypingFrames: 10_000, groupSnapshotEvents: 256,
    peerQueueMsgs: 65_536, peerQueueBytes: 32 * 1024 * 1024,
  });
  t.false('publicUrl' in cfg);
  t.false('announce' in cfg);
  t.false('secret' in cfg);
  for (const k of ['tokenAudience', 'tokenIssuer', 'adminToken']) t.false(k in cfg, k);
});

test('unrelated environment variables are ignored', (t) => {
  t.deepEqual(parseConfig([], { PATH: '/bin', PORT: '1', IM_UNKNOWN: 'x', im_ws_port: '1234' }), DEFAULTS);
});

test('the result is a fresh object: changing it does not touch DEFAULTS or the next result', (t) => {
  const a = parseConfig(['--join', 'x'], {});
  a.join.push('y');
  a.port = 1;
  t.deepEqual(DEFAULTS.join, []);
  t.is(DEFAULTS.port, 7001);
  const b = parseConfig([], {});
  t.deepEqual(b.join, []);
  t.not(b.join, DEFAULTS.join);
  t.is(b.port, 7001);
});

test('each IM_* variable overrides its default', (t) => {
  for (const [, envName, value, parsed, key] of FIELDS) {
    const cfg = parseConfig([], { [envName]: value });
    t.deepEqual(cfg[key], parsed, envName);
    // The p2p listen host follows the client one unless given.
    const follows = key === 'host' ? { p2pHost: DEFAULTS.p2pHost } : {};
    t.deepEqual({ ...cfg, [key]: DEFAULTS[key], ...follows }, { ...DEFAULTS, [key]: DEFAULTS[key] }, `${envName} changes only ${key}`);
  }
});

test('all IM_* variables together', (t) => {
  const env: Record<string, string> = { IM_INSECURE: '1' };
  const expected: Record<string, unknown> = { ...DEFAULTS, insecure: true };
  for (const [, envName, value, parsed, key] of FIELDS) {
    env[envName] = value;
    expected[key] = parsed;
  }
  t.deepEqual(parseConfig([], env), expected as Config);
});

test('each flag sets its field, in both --flag value and --flag=value forms', (t) => {
  for (const [flag, , value, parsed, key] of FIELDS) {
    t.deepEqual(parseConfig([`--${flag}`, value], {})[key], parsed, flag);
    t.deepEqual(parseConfig([`--${flag}=${value}`], {})[key], parsed, `${flag}=`);
  }
});

test('flags override the environment, which overrides the defaults', (t) => {
  const env = { IM_WS_PORT: '8001', IM_DATA: '/env/data', IM_SYNC: 'full', IM_RATE: '10', IM_NAME: 'from-env', IM_HOST: '10.0.0.1' };
  const cfg = parseConfig(['--port', '9002', '--data', '/flag/data', '--sync', 'normal', '--rate', '20'], env);
  t.is(cfg.port, 9002);
  t.is(cfg.data, '/flag/data');
  t.is(cfg.sync, 'normal');
  t.is(cfg.rate, 20);
  t.is(cfg.name, 'from-env'); // no flag: env wins over the default
  t.is(cfg.host, '10.0.0.1');
  t.is(cfg.p2pPort, 9001); // neither: the default
  for (const [flag, envName, value, parsed, key] of FIELDS) {
    // a valid but different env value loses to the flag
    const other = typeof parsed === 'number' ? String((parsed as number) + 1) : flag === 'sync' ? 'normal' : `${value}x`;
    t.deepEqual(parseConfig([`--${flag}`, value], { [envName]: other })[key], parsed, flag);
    t.not(parseConfig([], { [envName]: other })[key], parsed, envName);
  }
});

test('a flag given twice takes the last value', (t) => {
  t.is(parseConfig(['--port', '8001', '--port', '8002'], {}).port, 8002);
});

test('an empty IM_* variable counts as unset', (t) => {
  t.deepEqual(parseConfig([], { IM_WS_PORT: '', IM_DATA: '', IM_SYNC: '', IM_NAME: '', IM_RATE: '' }), DEFAULTS);
});

test('insecure mode: --insecure, IM_INSECURE=1 or true; off otherwise', (t) => {
  t.true(parseConfig(['--insecure'], {}).insecure);
  t.true(parseConfig([], { IM_INSECURE: '1' }).insecure);
  t.true(parseConfig([], { IM_INSECURE: 'true' }).insecure);
  t.true(parseConfig(['--insecure'], { IM_INSECURE: '0' }).insecure);
  for (const v of ['0', '', 'false', 'no']) t.false(parseConfig([], { IM_INSECURE: v }).insecure, v);
  t.false(parseConfig([], {}).insecure);
});

test('--join is repeatable and keeps the order given', (t) => {
  t.deepEqual(parseConfig(['--join', '/ip4/127.0.0.1/tcp/9001'], {}).join, ['/ip4/127.0.0.1/tcp/9001']);
  const cfg = parseConfig(['--join', 'a:9001', '--port', '7002', '--join=b:9002', '--join', 'c:9003'], {});
  t.deepEqual(cfg.join, ['a:9001', 'b:9002', 'c:9003']);
  t.is(cfg.port, 7002);
  t.deepEqual(parseConfig([], {}).join, []);
});

test('invalid numbers throw ConfigError naming the flag', (t) => {
  for (const [flag, envName] of NUMERIC) {
    for (const bad of ['abc', '1.5', '-1', 'NaN', 'Infinity', '12abc', '9007199254740993']) {
      rejects(t, [`--${flag}`, bad], {}, `--${flag}`);
      rejects(t, [], { [envName]: bad }, `--${flag}`);
      rejects(t, [], { [envName]: bad }, envName);
    }
  }
  for (const [flag, envName] of INTS) {
    rejects(t, [`--${flag}`, '0'], {}, `--${flag}`);
    rejects(t, [], { [envName]: '0' }, `--${flag}`);
    t.is(parseConfig([`--${flag}`, '1'], {})[FIELDS.find(([f]) => f === flag)![4]], 1, flag);
  }
});

// Number(' ') is 0: a blank value must not silently become port 0 (any free port) or any other number.
test('a blank (whitespace-only) number is rejected, not read as 0', (t) => {
  for (const [flag, envName] of NUMERIC) {
    for (const blank of [' ', '  ', '\t', '\n']) {
      rejects(t, [`--${flag}`, blank], {}, `--${flag}`);
      rejects(t, [], { [envName]: blank }, envName);
    }
  }
});

test('a bad value in the environment is an error even when it is not used by a flag', (t) => {
  rejects(t, ['--port', '7005'], { IM_RATE: 'lots' }, '--rate');
});

test('ports: 0 to 65535 accepted, outside that range throws naming the flag', (t) => {
  for (const [flag, envName] of PORTS) {
    const key = flag === 'port' ? 'port' : 'p2pPort';
    t.is(parseConfig([`--${flag}`, '0'], {})[key], 0);
    t.is(parseConfig([`--${flag}`, '65535'], {})[key], 65535);
    t.is(parseConfig([], { [envName]: '65535' })[key], 65535);
    for (const bad of ['65536', '70000', '-1', '100000000']) {
      rejects(t, [`--${flag}`, bad], {}, `--${flag}`);
      rejects(t, [], { [envName]: bad }, envName);
    }
  }
});

test('an unknown flag, a positional argument or a missing value throws ConfigError naming it', (t) => {
  rejects(t, ['--bogus'], {}, '--bogus');
  rejects(t, ['--bogus=1'], {}, '--bogus');
  rejects(t, ['--port', '7001', '--wat', 'x'], {}, '--wat');
  rejects(t, ['-p', '7001'], {}, '-p');
  rejects(t, ['--ws-port', '7001'], {}, '--ws-port');
  rejects(t, ['extra'], {}, 'extra');
  rejects(t, ['--port'], {}, '--port');
  rejects(t, ['--join'], {}, '--join');
  rejects(t, ['--insecure=yes'], {}, '--insecure');
});

test('a bad --sync throws ConfigError naming --sync', (t) => {
  for (const bad of ['fast', 'FULL', 'Normal', 'off', '1', ' full']) {
    rejects(t, ['--sync', bad], {}, '--sync');
    rejects(t, [], { IM_SYNC: bad }, '--sync');
  }
  t.is(parseConfig(['--sync', 'full'], {}).sync, 'full');
  t.is(parseConfig(['--sync', 'normal'], { IM_SYNC: 'full' }).sync, 'normal');
});

test('a bad --name throws ConfigError naming --name', (t) => {
  for (const bad of ['my node', 'a/b', 'n:1', 'n@1', 'é', 'nœud', 'x'.repeat(65), 'a\n']) {
    rejects(t, ['--name', bad], {}, '--name');
    rejects(t, [], { IM_NAME: bad }, '--name');
  }
  for (const good of ['n', 'node-1', 'Node_2.b', 'x'.repeat(64)]) t.is(parseConfig(['--name', good], {}).name, good);
});

test('--help throws ConfigError("help"), whatever else is given', (t) => {
  for (const [argv, env] of [
    [['--help'], {}],
    [['--port', '7002', '--help'], {}],
    [['--help', '--join', 'a'], { IM_WS_PORT: '8000' }],
    [['--help'], { IM_WS_PORT: 'not-a-port', IM_SYNC: 'bad' }],
  ] as [string[], Record<string, string>][]) {
    const e = t.throws(() => parseConfig(argv, env), { instanceOf: ConfigError });
    t.is(e?.message, 'help', argv.join(' '));
  }
});

test('ConfigError is an Error named ConfigError', (t) => {
  const e = new ConfigError('x');
  t.true(e instanceof Error);
  t.is(e.name, 'ConfigError');
  t.is(e.message, 'x');
});

test('a secret shorter than 32 bytes is refused, from the flag or IM_SECRET, naming both and the length', (t) => {
  for (const bad of ['s', 'test-secret-please-change', 'x'.repeat(31), 'é'.repeat(15)]) {
    rejects(t, ['--secret', bad], {}, '--secret');
    rejects(t, [], { IM_SECRET: bad }, 'IM_SECRET');
    rejects(t, [], { IM_SECRET: bad }, `${Buffer.byteLength(bad)} bytes`);
    rejects(t, [], { IM_SECRET: bad }, 'at least 32 bytes');
  }
  // Bytes, not characters: 16 two-byte characters are 32 bytes.
  for (const good of ['x'.repeat(32), 'é'.repeat(16), 'a'.repeat(64)]) t.is(parseConfig(['--secret', good], {}).secret, good);
  // No secret at all is fine: the node generates one (checked again when read from DATA/secret).
  t.is(parseConfig([], {}).secret, undefined);
});

test('insecure mode needs a loopback --host: 127.0.0.0/8, ::1 or localhost', (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) {
    t.true(parseConfig(['--insecure', '--host', host], {}).insecure, host);
    t.true(parseConfig([], { IM_INSECURE: '1', IM_HOST: host }).insecure, host);
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', '128.0.0.1', '127.0.0.256', 'chat.example', 'localhost.evil.example', '::2']) {
    rejects(t, ['--insecure', '--host', host], {}, '--insecure');
    rejects(t, ['--insecure', '--host', host], {}, `'${host}'`);
    rejects(t, [], { IM_INSECURE: '1', IM_HOST: host }, 'loopback');
    rejects(t, ['--host', host], { IM_INSECURE: 'true' }, 'IM_INSECURE');
    // Without insecure mode any address is fine.
    t.is(parseConfig(['--host', host], {}).host, host);
  }
  // An empty IM_HOST is unset: the loopback default.
  t.true(parseConfig([], { IM_INSECURE: '1', IM_HOST: '' }).insecure);
});

test('--max-token-life is a positive number of seconds, 30 days by default', (t) => {
  t.is(parseConfig([], {}).maxTokenLifeS, 2_592_000);
  t.is(parseConfig(['--max-token-life', '3600'], {}).maxTokenLifeS, 3600);
  t.is(parseConfig([], { IM_MAX_TOKEN_LIFE: '60' }).maxTokenLifeS, 60);
  for (const bad of ['0', '-1', '1h', '1.5']) rejects(t, ['--max-token-life', bad], {}, '--max-token-life');
});

test('--token-audience and --token-issuer are off unless given', (t) => {
  const cfg = parseConfig(['--token-audience', 'im', '--token-issuer', 'https://id.example'], {});
  t.is(cfg.tokenAudience, 'im');
  t.is(cfg.tokenIssuer, 'https://id.example');
  t.deepEqual(parseConfig([], { IM_TOKEN_AUDIENCE: '', IM_TOKEN_ISSUER: '' }), DEFAULTS);
});

test('--admin-token must be at least 16 bytes; unset leaves /cluster and /metrics open', (t) => {
  t.is(parseConfig(['--admin-token', 'x'.repeat(16)], {}).adminToken, 'x'.repeat(16));
  t.is(parseConfig([], { IM_ADMIN_TOKEN: 'y'.repeat(40) }).adminToken, 'y'.repeat(40));
  rejects(t, ['--admin-token', 'short'], {}, '--admin-token');
  rejects(t, [], { IM_ADMIN_TOKEN: 'x'.repeat(15) }, 'IM_ADMIN_TOKEN');
  t.false('adminToken' in parseConfig([], { IM_ADMIN_TOKEN: '' }));
});

test('the usage text names every new security flag and variable', async (t) => {
  const { USAGE } = await import('../../src/node/config.ts');
  for (const s of ['--max-token-life', 'IM_MAX_TOKEN_LIFE', '--token-audience', 'IM_TOKEN_AUDIENCE', '--token-issuer', 'IM_TOKEN_ISSUER', '--admin-token', 'IM_ADMIN_TOKEN', 'loopback', '32 bytes']) {
    t.true(USAGE.includes(s), s);
  }
});

test('--p2p-host defaults to the client --host (flag or IM_HOST); given, it wins over it', (t) => {
  t.is(parseConfig(['--host', '10.1.2.3'], {}).p2pHost, '10.1.2.3');
  t.is(parseConfig([], { IM_HOST: '0.0.0.0' }).p2pHost, '0.0.0.0');
  t.is(parseConfig(['--host', '10.1.2.3', '--p2p-host', '10.9.9.9'], {}).p2pHost, '10.9.9.9');
  t.is(parseConfig(['--host', '10.1.2.3'], { IM_P2P_HOST: '10.9.9.9' }).p2pHost, '10.9.9.9');
  t.is(parseConfig(['--p2p-host', '0.0.0.0'], { IM_HOST: '10.1.2.3' }).host, '10.1.2.3');
  // An empty IM_P2P_HOST is unset: it follows --host.
  t.is(parseConfig(['--host', '10.1.2.3'], { IM_P2P_HOST: '' }).p2pHost, '10.1.2.3');
});

test('insecure mode checks only the client --host: the peer port may listen anywhere', (t) => {
  t.true(parseConfig(['--insecure', '--p2p-host', '0.0.0.0', '--announce', '10.0.0.7'], {}).insecure);
  rejects(t, ['--insecure', '--host', '0.0.0.0', '--p2p-host', '127.0.0.1'], {}, 'loopback');
});

test('--announce takes HOST, HOST:PORT, [V6] or [V6]:PORT; names and addresses, not wildcards', (t) => {
  for (const good of ['10.77.0.3', '10.77.0.3:9001', 'peers.example', 'peers.example:1', '[2001:db8::1]', '[2001:db8::1]:65535', '2001:db8::1', 'fe80::1']) {
    t.is(parseConfig(['--announce', good], {}).announce, good, good);
    t.is(parseConfig([], { IM_ANNOUNCE: good }).announce, good, good);
  }
  t.deepEqual(parseHostPort('10.77.0.3', 'x'), { host: '10.77.0.3' });
  t.deepEqual(parseHostPort('10.77.0.3:9001', 'x'), { host: '10.77.0.3', port: 9001 });
  t.deepEqual(parseHostPort('[2001:db8::1]:9001', 'x'), { host: '2001:db8::1', port: 9001 });
  t.deepEqual(parseHostPort('2001:db8::1', 'x'), { host: '2001:db8::1' });
  t.deepEqual(parseHostPort('nat.example.com:19001', 'x'), { host: 'nat.example.com', port: 19001 });
  for (const bad of ['0.0.0.0', '0.0.0.0:9001', '::', '[::]:9001', 'h:0', 'h:65536', 'h:', ':9001', 'h:x', 'a b', '/ip4/1.2.3.4/tcp/1', 'h:1:2x', '[zz::1]', 'ws://h:1', '-h']) {
    rejects(t, ['--announce', bad], {}, '--announce');
    rejects(t, [], { IM_ANNOUNCE: bad }, 'IM_ANNOUNCE');
  }
});

test('advertised host: a listen host as given; for a wildcard the first non-internal IPv4, else 127.0.0.1', (t) => {
  const lo = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' } as const;
  const v6 = { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 } as const;
  const eth = { address: '192.168.5.20', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.168.5.20/24' } as const;
  const ifs = { lo: [lo], eth0: [v6, eth], eth1: [{ ...eth, address: '10.0.0.9' }] };
  t.is(advertisedHost('10.77.0.2', ifs), '10.77.0.2');
  t.is(advertisedHost('127.0.0.1', ifs), '127.0.0.1');
  t.is(advertisedHost('chat.example', ifs), 'chat.example');
  for (const w of ['0.0.0.0', '::', '[::]', '']) t.is(advertisedHost(w, ifs), '192.168.5.20', w);
  t.is(advertisedHost('0.0.0.0', { lo: [lo], eth0: [v6] }), '127.0.0.1');
  t.is(advertisedHost('0.0.0.0', {}), '127.0.0.1');
  for (const w of ['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0']) t.true(isWildcard(w), w);
  for (const h of ['127.0.0.1', '::1', '10.0.0.1', 'host']) t.false(isWildcard(h), h);
});

test('the usage text names --p2p-host, --announce and their variables', async (t) => {
  const { USAGE } = await import('../../src/node/config.ts');
  for (const s of ['--p2p-host', 'IM_P2P_HOST', '--announce', 'IM_ANNOUNCE', 'HOST[:PORT]']) t.true(USAGE.includes(s), s);
});
