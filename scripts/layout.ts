// The shape of src/: lines per folder, files over the size limit, functions over the length
// limit, and which folders each folder imports. `npm run layout` prints it; test/unit/layout.test.ts
// holds the limits. Functions are found on the TypeScript with its types stripped (Node's own
// stripper keeps every position), parsed by acorn.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as acorn from 'acorn';
import * as walk from 'acorn-walk';

export const MAX_FILE_LINES = 400;
export const MAX_FUNCTION_LINES = 80;

export type LongFunction = { file: string; line: number; name: string; lines: number };
export type SourceFile = { file: string; folder: string; lines: number; imports: string[]; functions: LongFunction[] };

const ROOT = fileURLToPath(new URL('../', import.meta.url));

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

/** The folder under src/ a file belongs to (`web/chat` stays `web`). */
const folderOf = (file: string): string => relative(join(ROOT, 'src'), file).split('/')[0]!;

type Fn = { type: string; id?: { name: string } | null; loc: { start: { line: number }; end: { line: number } } };

function read(file: string, minLines: number): SourceFile {
  const text = readFileSync(file, 'utf8');
  const js = stripTypeScriptTypes(text, { mode: 'strip' });
  const ast = acorn.parse(js, { ecmaVersion: 'latest', sourceType: 'module', locations: true });
  const functions: LongFunction[] = [];
  const rel = relative(ROOT, file);
  const seen = (n: Fn) => {
    const lines = n.loc.end.line - n.loc.start.line + 1;
    if (lines > minLines) functions.push({ file: rel, line: n.loc.start.line, name: n.id?.name ?? '(anonymous)', lines });
  };
  walk.full(ast, (n) => {
    if (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression' || n.type === 'ArrowFunctionExpression') seen(n as unknown as Fn);
  });
  // Type-only imports are stripped above; they still say which folder depends on which.
  const imports = [...text.matchAll(/from\s+'(\.{1,2}\/[^']+)'/g)]
    .map((m) => resolve(dirname(file), m[1]!))
    .filter((p) => p.startsWith(join(ROOT, 'src') + '/'))
    .map(folderOf);
  return { file: rel, folder: folderOf(file), lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0), imports: [...new Set(imports)], functions };
}

/** Every .ts file under src/, with the functions longer than `minLines`. */
export function survey(minLines = MAX_FUNCTION_LINES): SourceFile[] {
  return [...tsFiles(join(ROOT, 'src'))].map((f) => read(f, minLines));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = survey();
  const byFolder = new Map<string, { files: number; lines: number; deps: Set<string> }>();
  for (const f of files) {
    const s = byFolder.get(f.folder) ?? { files: 0, lines: 0, deps: new Set<string>() };
    s.files++;
    s.lines += f.lines;
    for (const d of f.imports) if (d !== f.folder) s.deps.add(d);
    byFolder.set(f.folder, s);
  }
  console.log('| folder | files | lines | imports from |\n| --- | ---: | ---: | --- |');
  for (const [k, s] of [...byFolder].sort((a, b) => b[1].lines - a[1].lines)) console.log(`| src/${k}/ | ${s.files} | ${s.lines} | ${[...s.deps].sort().join(', ')} |`);
  const total = files.reduce((n, f) => n + f.lines, 0);
  console.log(`\n${files.length} files, ${total} lines`);
  const big = files.filter((f) => f.lines > MAX_FILE_LINES);
  const long = files.flatMap((f) => f.functions).sort((a, b) => b.lines - a.lines);
  console.log(`files over ${MAX_FILE_LINES} lines: ${big.length ? big.map((f) => `${f.file} (${f.lines})`).join(', ') : 'none'}`);
  console.log(`functions over ${MAX_FUNCTION_LINES} lines: ${long.length ? long.map((l) => `${l.file}:${l.line} ${l.name} (${l.lines})`).join(', ') : 'none'}`);
}
