// docs/PROTOCOL.md is the repository's own client protocol: it must name every op, frame and error
// code that src/protocol/frames.ts defines (read from the source, so the list cannot drift), keep
// up with the outside v1.1 contract where a copy of it sits beside the checkout, and the
// repository must not point outside itself for its documentation.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FrameError, validateRequest } from '../../src/protocol/frames.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = 'test/unit/docs.test.ts';
const FRAMES = readFileSync(new URL('../../src/protocol/frames.ts', import.meta.url), 'utf8');
const DOC = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
// The only place the repository may look outside itself: the contract, when it is beside the checkout.
const CONTRACT = new URL('../../../shared/PROTOCOL.md', import.meta.url);

/** The string literals of `export type <name> = 'a' | 'b' …;`. */
function literalUnion(name: string): string[] {
  const m = new RegExp(`export type ${name} =([^;]*);`).exec(FRAMES);
  if (!m) throw new Error(`frames.ts has no type ${name}`);
  return [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]!);
}

/** The `op` of every member of `export type <name> = A | B …;`; throws for a member whose op it cannot read. */
function opsOfUnion(name: string): string[] {
  const m = new RegExp(`export type ${name} =([^;]*);`).exec(FRAMES);
  if (!m) throw new Error(`frames.ts has no type ${name}`);
  const members = m[1]!.split('|').map((s) => s.trim()).filter(Boolean);
  return members.map((member) => {
    const def = new RegExp(`export type ${member} = \\{ op: '([a-z_]+)'`).exec(FRAMES);
    if (def) return [def[1]!];
    // A member for several ops names them as a union type of their own.
    const named = new RegExp(`export type ${member} = \\{ op: ([A-Za-z]+);`).exec(FRAMES);
    if (!named) throw new Error(`cannot read the op of ${member} in frames.ts`);
    return literalUnion(named[1]!);
  }).flat();
}

/** Ops shown as a JSON example in the doc: `"op":"x"` inside a ```json block. */
function exampleOps(doc: string): Set<string> {
  const ops = new Set<string>();
  for (const block of doc.matchAll(/```json\n([\s\S]*?)```/g)) {
    for (const m of block[1]!.matchAll(/"op":\s*"([a-z_]+)"/g)) ops.add(m[1]!);
  }
  return ops;
}

const requestOps = [...new Set(opsOfUnion('Request'))];
const serverOps = [...new Set(opsOfUnion('ServerFrame'))];
const errorCodes = literalUnion('ErrorCode');

test('the ops and codes are read from frames.ts, and the validator knows every request op', (t) => {
  t.true(requestOps.length > 0 && serverOps.length > 0 && errorCodes.length > 0);
  for (const op of requestOps) {
    // A frame of just the op: valid, or refused for a missing field, never as an unknown op.
    try {
      validateRequest({ op });
    } catch (e) {
      t.true(e instanceof FrameError, op);
      t.notRegex((e as Error).message, /unknown op/, `${op} is in the Request union but the validator does not know it`);
    }
  }
});

test('docs/PROTOCOL.md has a JSON example of every client request op', (t) => {
  const shown = exampleOps(DOC);
  const missing = requestOps.filter((op) => !shown.has(op));
  t.deepEqual(missing, [], 'client ops without a ```json example carrying "op":"<op>" in docs/PROTOCOL.md');
});

test('docs/PROTOCOL.md has a JSON example of every server frame op', (t) => {
  const shown = exampleOps(DOC);
  const missing = serverOps.filter((op) => !shown.has(op));
  t.deepEqual(missing, [], 'reply and event ops without a ```json example in docs/PROTOCOL.md');
});

test('docs/PROTOCOL.md lists every error code in its error table', (t) => {
  const missing = errorCodes.filter((code) => !new RegExp(`^\\| \`${code}\` \\|`, 'm').test(DOC));
  t.deepEqual(missing, [], 'error codes of frames.ts without a row in the error table of docs/PROTOCOL.md');
});

test('docs/PROTOCOL.md covers sections 1 to 9 of the v1.1 contract, when it is beside the checkout', (t) => {
  if (!existsSync(CONTRACT)) {
    t.log(`${fileURLToPath(CONTRACT)} is absent: the comparison with the contract is skipped`);
    t.pass();
    return;
  }
  const text = readFileSync(CONTRACT, 'utf8');
  const start = text.search(/^## 1\./m);
  const end = text.search(/^## 10\./m);
  t.true(start >= 0 && end > start, 'the contract has sections 1 and 10');
  const part = text.slice(start, end);
  // Ops in its frames, codes of its error table, and every other backticked name (an op, a code,
  // a field): each must appear in the doc as `name` or "name".
  const names = new Set<string>();
  for (const m of part.matchAll(/"op":\s*"([a-z_]+)"/g)) names.add(m[1]!);
  for (const m of part.matchAll(/`([a-z][a-z0-9_]*)`/g)) names.add(m[1]!);
  t.true(names.size > 0);
  const missing = [...names].filter((n) => !DOC.includes(`\`${n}\``) && !DOC.includes(`"${n}"`));
  t.deepEqual(missing, [], 'names of contract sections 1-9 that docs/PROTOCOL.md does not mention');
});

test('no tracked file refers to the contract outside the repository', (t) => {
  const skip = new Set([SELF, 'package-lock.json']);
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\0').filter((f) => f && !skip.has(f));
  t.true(files.includes('src/protocol/frames.ts'), 'git ls-files lists the checkout');
  const offending: string[] = [];
  for (const f of files) {
    const path = `${ROOT}${f}`;
    if (!existsSync(path) || !statSync(path).isFile()) continue; // deleted in the working tree, or a submodule
    const text = readFileSync(path, 'latin1');
    if (text.includes('../shared') || text.includes('shared/PROTOCOL')) offending.push(f);
  }
  t.deepEqual(offending, []);
});
