// The pages and the SDK package are built by `npm test`'s pretest; a test file run on its own
// builds them when a source is newer than the output (scripts/build.ts, a second or so).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const SOURCES = ['src/web', 'src/client', 'src/protocol'];

function newest(dir: string): number {
  return Math.max(0, ...readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => statSync(join(dir, f)).mtimeMs));
}

/** Builds dist/web and packages/client/dist unless both are newer than every source. */
export function ensureBuilt(): void {
  const outputs = ['dist/web/index.html', 'dist/web/admin.html', 'packages/client/dist/index.js'].map((f) => join(ROOT, f));
  const src = Math.max(...SOURCES.map((d) => newest(join(ROOT, d))));
  if (outputs.every((f) => existsSync(f) && statSync(f).mtimeMs >= src)) return;
  execFileSync(process.execPath, [join(ROOT, 'scripts/build.ts')], { stdio: 'inherit' });
}
