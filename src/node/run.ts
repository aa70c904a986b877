// The node proper, loaded by main.ts once the compile cache is on: parse settings, start, and stop
// cleanly on SIGTERM/SIGINT.
import { pino } from 'pino';
import { ConfigError, USAGE, parseConfig } from './config.ts';
import type { Config } from './config.ts';
import { startNode } from './node.ts';
import { DataDirInUseError } from '../data-dir/index.ts';

let cfg: Config;
try {
  cfg = parseConfig(process.argv.slice(2), process.env);
} catch (e) {
  if (e instanceof ConfigError) {
    if (e.message === 'help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    process.stderr.write(`im-node: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  throw e;
}

const log = pino({ level: cfg.logLevel, base: { node: cfg.name, pid: process.pid } });
const fatal = (what: string) => (e: unknown) => {
  log.fatal({ err: e }, what);
  process.exit(1);
};
process.on('uncaughtException', fatal('uncaught exception'));
process.on('unhandledRejection', fatal('unhandled rejection'));

const node = await startNode(cfg, log, fatal('store commit failed; exiting so that a restart reloads from disk')).catch((e: unknown) => {
  // Settings found wrong only at start (a short secret in DATA/secret, a folder in use): exit 2 as above.
  if (!(e instanceof ConfigError || e instanceof DataDirInUseError)) throw e;
  log.fatal(e.message);
  process.stderr.write(`im-node: ${e.message}\n`);
  process.exit(2);
});
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    node.stop().then(() => process.exit(0), fatal('shutdown failed'));
  });
}
