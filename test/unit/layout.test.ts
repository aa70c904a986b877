// The shape of src/ that lets a reader find where a behaviour lives (docs/ARCHITECTURE.md): one
// folder per role, each with an index.ts that says what it owns; no file over 400 lines and no
// function over 80; src/node/ holds only the wiring; the pure modules import no role.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, survey } from '../../scripts/layout.ts';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const files = survey();

/** Folders that run the node, one role each; every one opens its index.ts with what it owns. */
const ROLES = ['transport', 'cluster', 'gateway', 'http', 'home', 'social', 'group-home', 'replica', 'channel', 'clock', 'data-dir', 'node'];
/** Modules with no I/O of their own, below every role. */
const PURE = ['ring', 'store', 'presence', 'membership', 'groups', 'contacts', 'protocol', 'limits', 'clock', 'channel'];

test(`no file under src/ is over ${MAX_FILE_LINES} lines`, (t) => {
  t.deepEqual(files.filter((f) => f.lines > MAX_FILE_LINES).map((f) => `${f.file} (${f.lines})`), []);
});

test(`no function under src/ is over ${MAX_FUNCTION_LINES} lines`, (t) => {
  t.deepEqual(files.flatMap((f) => f.functions).map((l) => `${l.file}:${l.line} ${l.name} (${l.lines})`), []);
});

test('every role folder has an index.ts that opens with what the role owns', (t) => {
  for (const role of ROLES.filter((r) => r !== 'node')) {
    const index = `${SRC}${role}/index.ts`;
    t.true(existsSync(index), `src/${role}/ has no index.ts`);
    if (existsSync(index)) t.regex(readFileSync(index, 'utf8'), /^\/\/ .{20,}/, `src/${role}/index.ts does not open with a comment`);
  }
});

test('src/node/ holds only the wiring: main (the entry) and run, the node and its roles, settings, metrics and status', (t) => {
  t.deepEqual(readdirSync(`${SRC}node`).sort(), ['config.ts', 'edge.ts', 'main.ts', 'metrics.ts', 'node.ts', 'open-files.ts', 'roles.ts', 'run.ts', 'status.ts']);
});

test('the pure modules import no role, and no role imports src/node/', (t) => {
  for (const f of files) {
    if (PURE.includes(f.folder)) t.deepEqual(f.imports.filter((d) => !PURE.includes(d)), [], `${f.file} imports a role`);
    if (f.folder !== 'node') t.false(f.imports.includes('node'), `${f.file} imports src/node/`);
  }
});
