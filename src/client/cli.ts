// The `im` command line: mint tokens, send one message, listen to a timeline. Built on the SDK;
// exit codes: 0 done, 1 connection, login or server error, 2 bad usage.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { ConnectionClosedError, ImError } from './connection.ts';
import type { WebSocketCtor } from './connection.ts';
import { ImSession } from './session.ts';
import type { SessionOptions } from './session.ts';
import { isId } from '../protocol/frames.ts';
import type { Entry, WelcomeReply } from '../protocol/frames.ts';

const DEFAULT_URL = 'ws://127.0.0.1:7001/ws';
const REPLY_TIMEOUT_MS = 15_000;

const CONN_HELP = `connection options (send, listen):
  --url URLS       node(s) to connect to, comma-separated: any of them, and
                   the others after a failure     IM_URL (${DEFAULT_URL})
  --as USER        log in as this user (needed unless --token is given)
  --device D       device id                   (listen: cli, send: cli-send)
  --token T        a login token               IM_TOKEN
  --secret S       mint a token with this secret (as 'im token' finds it)
  Without a token, one is minted when a secret can be found; otherwise the
  login is {"user":…}, which only a node started with --insecure accepts.`;

const SECRET_HELP = `secret lookup: --secret, then IM_SECRET, then the file $IM_DATA/secret
(IM_DATA defaults to ./data; the node and scripts/cluster.sh generate it there).`;

const HELP: Record<string, string> = {
  main: `usage: im <command> [options]

commands:
  token <user>         print a login token (HS256 JWT) for a user
  send <to> <body…>    send one message (to a user, or g:<group>) and print the 'sent' reply
  group <op> <group> [members…]
                       create, add, remove, leave or info: manage a group
  listen               print messages as they arrive (replay first, then live)

'im <command> --help' describes a command.
${CONN_HELP}
`,
  token: `usage: im token <user> [--exp 1h] [--secret S]

Prints an HS256 JWT with sub=<user>, signed with the cluster secret.
  --exp SPAN       lifetime: 90s, 30m, 1h, 7d, or a number of seconds (default 1h)
  --secret S       the secret
${SECRET_HELP}
`,
  send: `usage: im send <to> <body…> [--cid C] [connection options]

Logs in, sends one message to user <to>, or to a group with g:<group> (the body is the remaining words,
joined by spaces), prints the 'sent' reply as JSON and exits 0. An error
reply prints 'error <code>: <message>' and exits 1.
  --cid C          client message id, for an idempotent retry (default: random)
The default device is cli-send, so that sending never replaces a running
'im listen' of the same user (device cli).
${CONN_HELP}
`,
  group: `usage: im group <create|add|remove|leave|info> <group> [members…] [connection options]

Logs in and runs one group op: create (you own it; members optional), add and
remove (the owner only), leave, or info (prints the group as JSON). Exits 0 on
success; an error reply prints 'error <code>: <message>' and exits 1.
${CONN_HELP}
`,
  listen: `usage: im listen [--since N] [--ack] [--json] [connection options]

Logs in and prints every message of the user's timeline as it arrives: the
replay after login first (from --since, else this device's acked cursor),
then live ones, one line each: [seq 12] alice → bob: hi
  --since N        replay entries with seq greater than N
  --ack            acknowledge each printed seq as it is printed (moves this
                   device's cursor)
  --json           print the raw msg frames as JSON lines
Keeps listening across node failures: on a goaway or a lost connection it
reconnects to another node (one the goaway names, or another --url) and carries
on from the last seq printed, with no gap and no repeat. Runs until Ctrl-C
(exit 0), until the only node shuts down (exit 0), or until the session ends
otherwise (another login of the same device, a refused login: exit 1).
${CONN_HELP}
`,
};

class UsageError extends Error {
  override name = 'UsageError';
}
/** A failure that ends the command with exit 1 and only its message printed. */
class Fail extends Error {
  override name = 'Fail';
}

const connOptions = {
  url: { type: 'string' },
  as: { type: 'string' },
  device: { type: 'string' },
  token: { type: 'string' },
  secret: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Env = Record<string, string | undefined>;

type Options = Record<string, { type: 'string' | 'boolean'; short?: string }>;
type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(args: string[], options: Options): Parsed {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true }) as Parsed;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The token secret: --secret, IM_SECRET, then $IM_DATA/secret; undefined when none is found. */
export function findSecret(flag: string | undefined, env: Env): string | undefined {
  if (flag) return flag;
  if (env.IM_SECRET) return env.IM_SECRET;
  const file = join(env.IM_DATA || './data', 'secret');
  try {
    const s = readFileSync(file, 'utf8').trim();
    return s || undefined;
  } catch {
    return undefined;
  }
}

function expiry(exp: string): string {
  if (/^\d+$/.test(exp)) return `${exp}s`;
  if (/^\d+(\.\d+)?\s*(s|sec|secs|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|y|years?)$/i.test(exp)) return exp;
  throw new UsageError(`--exp must be a span like 90s, 30m, 1h, 7d, or a number of seconds, got '${exp}'`);
}

export async function mintToken(user: string, secret: string, exp = '1h'): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt()
    .setExpirationTime(expiry(exp)).sign(new TextEncoder().encode(secret));
}

function checkId(what: string, v: string | undefined): string {
  if (v === undefined) throw new UsageError(`missing ${what}`);
  if (!isId(v)) throw new UsageError(`${what} '${v}' is not an id (1 to 64 characters from A-Z a-z 0-9 _ . @ -)`);
  return v;
}

async function cmdToken(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(args, { exp: { type: 'string' }, secret: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) return help('token');
  if (positionals.length > 1) throw new UsageError(`token takes one user, got ${positionals.length}`);
  const user = checkId('user', positionals[0]);
  const secret = findSecret(values.secret as string | undefined, env);
  if (!secret) throw new UsageError('no secret: pass --secret, set IM_SECRET, or point IM_DATA at a node data folder with a secret file');
  process.stdout.write(`${await mintToken(user, secret, (values.exp as string | undefined) ?? '1h')}\n`);
  return 0;
}

type Conn = { urls: string[]; as?: string; device: string; token?: string; secret?: string; minted: boolean };

function connOf(values: Record<string, unknown>, env: Env, defaultDevice: string): Conn {
  const given = (values.url as string | undefined) ?? env.IM_URL ?? DEFAULT_URL;
  const urls = given.split(',').map((u) => u.trim()).filter(Boolean);
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url '${url}' is not a URL (like ${DEFAULT_URL})`);
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new UsageError(`--url must be ws:// or wss:// URLs, got '${url}'`);
  }
  if (!urls.length) throw new UsageError('--url names no node');
  const as = values.as === undefined ? undefined : checkId('--as user', values.as as string);
  const device = checkId('--device', (values.device as string | undefined) ?? defaultDevice);
  const token = (values.token as string | undefined) ?? (env.IM_TOKEN || undefined);
  if (token === undefined && as === undefined) throw new UsageError('--as <user> is required (or --token, or IM_TOKEN)');
  const secret = token === undefined ? findSecret(values.secret as string | undefined, env) : undefined;
  return { urls, device, minted: token === undefined && secret !== undefined, ...(as !== undefined ? { as } : {}), ...(token !== undefined ? { token } : {}), ...(secret !== undefined ? { secret } : {}) };
}

function withTimeout<T>(p: Promise<T>, what: string, ms = REPLY_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, ko) => {
      timer = setTimeout(() => ko(new Fail(`no reply to ${what} within ${ms / 1000} s`)), ms);
    }),
  ]);
}

type SessionOpts = Pick<SessionOptions, 'since' | 'autoAck' | 'ackDelayMs'>;

/**
 * A session (the SDK's: it reconnects, replays and resends) logged in as the connection options
 * say, once it is live. Until then a command fails fast: when every --url has refused a
 * connection, or the login is refused. A minted token that the node rejects is followed by a
 * {"user"} login, so a stale ./data/secret does not lock one out of an --insecure node.
 */
async function openSession(conn: Conn, opts: SessionOpts, listen?: (s: ImSession) => void, asUser = false): Promise<ImSession> {
  const auth = !asUser && conn.token !== undefined ? { token: conn.token }
    : !asUser && conn.secret !== undefined ? { token: () => mintToken(conn.as!, conn.secret!) }
    : { user: conn.as! };
  const s = new ImSession({ urls: conn.urls, device: conn.device, WebSocket: WebSocket as unknown as WebSocketCtor, ...auth, ...opts });
  listen?.(s); // before the first login: the replay comes before the session is live
  try {
    await withTimeout(new Promise<void>((ok, ko) => {
      let failures = 0;
      s.on('error', (e) => {
        if (s.welcome) return;
        if (e instanceof ImError || ++failures >= conn.urls.length) ko(e);
      });
      s.ready().then(ok, ko);
    }), 'login');
    return s;
  } catch (e) {
    s.close();
    if (conn.minted && !asUser && e instanceof ImError && e.code === 'unauthenticated') {
      try {
        return await openSession(conn, opts, listen, true);
      } catch {
        throw e;
      }
    }
    if (e instanceof ConnectionClosedError) throw new Fail(e.message.replace(/^could not/, 'cannot').replace(/ \(\d+\)$/, ''));
    throw e;
  }
}

async function cmdSend(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(args, { ...connOptions, cid: { type: 'string' } });
  if (values.help) return help('send');
  const target = positionals[0];
  const group = target?.startsWith('g:') ? checkId('group in g:<group>', target.slice(2)) : undefined;
  const to = group ?? checkId('recipient <to>', target);
  if (positionals.length < 2) throw new UsageError('missing message body');
  const body = positionals.slice(1).join(' ');
  const cid = checkId('--cid', (values.cid as string | undefined) ?? `cli-${randomBytes(9).toString('base64url')}`);
  // Replay is of no use to a one-shot send: 'latest' skips it.
  const s = await openSession(connOf(values, env, 'cli-send'), { since: 'latest', autoAck: false });
  try {
    // Resent with its cid across reconnects and `unavailable` answers, until sent or the timeout.
    const sent = await withTimeout(s.send(group !== undefined ? { group } : { to }, body, cid), 'send');
    process.stdout.write(`${JSON.stringify(sent)}\n`);
    return 0;
  } finally {
    s.close();
  }
}

async function cmdGroup(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(args, connOptions);
  if (values.help) return help('group');
  const [op, name, ...members] = positionals;
  if (op !== 'create' && op !== 'add' && op !== 'remove' && op !== 'leave' && op !== 'info') {
    throw new UsageError(`the op must be create, add, remove, leave or info, got '${op ?? ''}'`);
  }
  const group = checkId('<group>', name);
  for (const m of members) checkId('member', m);
  if ((op === 'leave' || op === 'info') && members.length) throw new UsageError(`${op} takes no members`);
  if ((op === 'add' || op === 'remove') && !members.length) throw new UsageError(`${op} needs at least one member`);
  const s = await openSession(connOf(values, env, 'cli-send'), { since: 'latest', autoAck: false });
  try {
    if (op === 'info') process.stdout.write(`${JSON.stringify(await withTimeout(s.groupInfo(group), 'group_info'))}\n`);
    else if (op === 'leave') await withTimeout(s.groupLeave(group), 'group_leave');
    else if (op === 'create') await withTimeout(s.groupCreate(group, members), 'group_create');
    else await withTimeout(op === 'add' ? s.groupAdd(group, members) : s.groupRemove(group, members), `group_${op}`);
    return 0;
  } finally {
    s.close();
  }
}

function line(m: Entry): string {
  const target = m.to ?? m.conv;
  // One message per line, whatever the body holds.
  const body = m.body.replace(/[\r\n]+/g, ' ⏎ ');
  return `[seq ${m.seq}] ${m.from} → ${target}: ${body}`;
}

async function cmdListen(args: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(args, { ...connOptions, since: { type: 'string' }, ack: { type: 'boolean' }, json: { type: 'boolean' } });
  if (values.help) return help('listen');
  if (positionals.length) throw new UsageError(`listen takes no arguments, got '${positionals.join(' ')}'`);
  let since: number | undefined;
  if (values.since !== undefined) {
    since = Number(values.since);
    if (!/^\d+$/.test(values.since as string) || !Number.isSafeInteger(since)) throw new UsageError(`--since must be a non-negative integer, got '${values.since}'`);
  }
  const conn = connOf(values, env, 'cli');
  const json = values.json === true;
  let listening = false;
  const interrupted = new Promise<number>((resolve) => {
    const stop = () => (listening ? resolve(0) : process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // The session delivers the timeline in seq order with no gap and no repeat, across reconnects
  // to other nodes (gaps filled with sync), and acks in batches with --ack.
  const print = (m: Entry) => process.stdout.write(`${json ? JSON.stringify({ op: 'msg', ...m }) : line(m)}\n`);
  const s = await openSession(conn, { since: since ?? 'acked', autoAck: values.ack === true, ackDelayMs: 0 }, (s) => s.on('message', print));
  listening = true;
  const said = (w: WelcomeReply) =>
    process.stderr.write(`im: listening as ${w.user}/${w.device} on ${w.node} (timeline at seq ${w.seq}, acked ${w.acked}); Ctrl-C to stop\n`);
  said(s.welcome!);
  s.on('welcome', said);
  const ended = new Promise<number>((resolve) => {
    s.on('goaway', (g) => {
      const others = (g.nodes ?? []).filter((u) => u !== s.state.url);
      process.stderr.write(`im: goaway from the node: ${g.reason}${others.length ? ` (going to another node: ${others.join(' ')})` : ''}\n`);
      // A node shutting down with nowhere else to go ends a listen normally.
      if (g.reason === 'shutdown' && !others.length && s.urls.length <= 1) resolve(0);
    });
    s.on('state', (st) => {
      if (st.state === 'reconnecting' && st.attempt === 0) process.stderr.write(`im: ${st.reason ?? 'connection lost'}; reconnecting\n`);
      if (st.state === 'closed') {
        process.stderr.write(`im: ${st.reason ?? 'session closed'}\n`);
        resolve(1);
      }
    });
  });
  const code = await Promise.race([ended, interrupted]);
  s.close();
  return code;
}

function help(cmd: string): number {
  process.stdout.write(HELP[cmd] ?? HELP.main!);
  return 0;
}

const COMMANDS: Record<string, (args: string[], env: Env) => Promise<number>> = {
  token: cmdToken,
  send: cmdSend,
  group: cmdGroup,
  listen: cmdListen,
};

async function main(argv: string[], env: Env): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    process.stderr.write(HELP.main!);
    return 2;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') return help(rest[0] ?? 'main');
  const run = COMMANDS[cmd];
  if (!run) throw new UsageError(`unknown command '${cmd}'`);
  return run(rest, env);
}

// `im listen | head` closes stdout early; that is a normal way to stop.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const argv = process.argv.slice(2);
main(argv, process.env).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      const cmd = argv[0] !== undefined && argv[0] in COMMANDS ? argv[0] : undefined;
      process.stderr.write(`im: ${e.message}\n${cmd ? `${HELP[cmd]!.split('\n')[0]}\n'im ${cmd} --help' for more.\n` : "'im --help' for usage.\n"}`);
      process.exit(2);
    }
    if (e instanceof ImError) {
      process.stderr.write(`error ${e.code}: ${e.message.slice(e.code.length + 2)}\n`);
      process.exit(1);
    }
    if (e instanceof Fail) {
      process.stderr.write(`im: ${e.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`im: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
