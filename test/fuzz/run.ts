// `npm run fuzz [-- files…]`: the fuzzers with a random seed (or IM_FUZZ_SEED) for IM_FUZZ_SECONDS
// each (default 60), one file at a time. Every failure prints the command that replays it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const files = process.argv.slice(2);
const targets = files.length ? files : readdirSync(join(root, 'test/fuzz')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/fuzz/${f}`);
const env = { ...process.env, IM_FUZZ_SEED: process.env.IM_FUZZ_SEED || 'random', IM_FUZZ_SECONDS: process.env.IM_FUZZ_SECONDS || '60' };
const ava = join(root, 'node_modules/ava/entrypoints/cli.js');
const r = spawnSync(process.execPath, [ava, '--serial', '--concurrency', '1', '--timeout', '30m', '--verbose', ...targets], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
