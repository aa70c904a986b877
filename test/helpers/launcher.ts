// One node process of ours, for tests and benchmarks alike: `node src/node/main.ts` with a name, a
// data folder and ports (0: chosen by the OS), ready once it logs "listening" (its client URL and
// peer address are read from that line), its output kept line by line; stopped with SIGTERM or
// killed with SIGKILL, and started again on the same data folder and peer port. TestNode
// (test/helpers/node.ts) and OwnCluster (bench/lib.ts) stand on it; imports node built-ins only,
// so benchmarks load it without ava.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';

export const MAIN = resolve(import.meta.dirname, '../../src/node/main.ts');

/** The fields of a node's JSON log line that callers here read. */
export type LogLine = { msg?: string; level?: number; url?: string; port?: number; p2p?: string[] };

export type LaunchOpts = {
  /** --name (default n1). */
  name?: string;
  /** More flags, read at every start: a caller may change them between lives (the seeds to --join). */
  args?: string[];
  env?: Record<string, string | undefined>;
  /** Run the node in this network namespace (`ip netns exec NS node …`; see test/helpers/netns.ts). */
  netns?: string;
  /** Where the caller reaches the node's HTTP port (default 127.0.0.1). */
  httpHost?: string;
  /** Keep only the last this many entries in `log` (default all: a test reads the whole log). */
  logLines?: number;
  /** Sees every process as soon as it is spawned, before it listens (exit listeners, raw output). */
  onSpawn?: (proc: ChildProcess) => void;
  /** Sees every stdout line (with its JSON, when it is JSON) and every stderr chunk, as they come. */
  onOutput?: (text: string, stream: 'stdout' | 'stderr', json: LogLine | undefined) => void;
};

export class NodeProcess {
  data: string;
  opts: LaunchOpts;
  /** Flags of the caller's kind that come before opts.args in every life (a test node's --secret). */
  readonly fixedArgs: string[];
  proc: ChildProcess | undefined;
  /** The client URL (ws://…/ws) from the "listening" line. */
  url = '';
  /** http://host:port of the same port (/cluster, /metrics). */
  http = '';
  port = 0;
  p2pPort = 0;
  /** This node's peer multiaddr (with /p2p/<id>), for --join. */
  p2p = '';
  /** stdout lines and stderr chunks of every life, in order (the last opts.logLines of them). */
  log: string[] = [];

  constructor(data: string, opts: LaunchOpts, fixedArgs: string[] = []) {
    this.data = data;
    this.opts = opts;
    this.fixedArgs = fixedArgs;
  }

  get name(): string {
    return this.opts.name ?? 'n1';
  }

  /** True while the last process started has not exited. */
  running(): boolean {
    const p = this.proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** Spawns the node (client port `port`, peer port the last one it had) and waits until it listens. */
  async start(port = this.port): Promise<void> {
    const args = [
      MAIN, '--name', this.name, '--data', this.data, '--port', String(port), '--p2p-port', String(this.p2pPort),
      ...this.fixedArgs, ...(this.opts.args ?? []),
    ];
    // `ip netns exec` execs the command in place: the child's pid is the node's.
    const [cmd, argv] = this.opts.netns ? ['ip', ['netns', 'exec', this.opts.netns, process.execPath, ...args]] : [process.execPath, args];
    const proc = spawn(cmd, argv, { env: { ...process.env, ...this.opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.opts.onSpawn?.(proc);
    let buf = '';
    await new Promise<void>((ok, ko) => {
      const onExit = (code: number | null, signal: string | null) =>
        ko(new Error(`node ${this.name} exited (${signal ?? code}) before listening:\n${this.log.slice(-20).join('\n')}`));
      proc.once('exit', onExit);
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.keep(line);
          let j: LogLine | undefined;
          try {
            j = JSON.parse(line) as LogLine;
          } catch {
            // not a JSON line
          }
          if (j?.msg === 'listening') {
            this.url = j.url!;
            this.port = j.port!;
            this.p2p = j.p2p?.[0] ?? '';
            this.p2pPort = Number(/\/tcp\/(\d+)/.exec(this.p2p)?.[1] ?? 0);
            this.http = `http://${this.opts.httpHost ?? '127.0.0.1'}:${j.port}`;
            proc.off('exit', onExit);
            ok();
          }
          this.opts.onOutput?.(line, 'stdout', j);
        }
      });
      proc.stderr!.on('data', (d: Buffer) => {
        const text = d.toString();
        this.keep(text);
        this.opts.onOutput?.(text, 'stderr', undefined);
      });
    });
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || !this.running()) return;
    const gone = once(p, 'exit');
    p.kill('SIGKILL');
    await gone;
  }

  /** SIGTERM (graceful), and wait for the exit code. */
  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p || !this.running()) return p?.exitCode ?? null;
    const gone = once(p, 'exit');
    p.kill('SIGTERM');
    const [code] = (await gone) as [number | null];
    return code;
  }

  private keep(entry: string): void {
    this.log.push(entry);
    const max = this.opts.logLines;
    if (max !== undefined && this.log.length > max) this.log.splice(0, this.log.length - max);
  }
}
