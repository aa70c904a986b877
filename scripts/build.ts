// Builds everything that runs outside a checkout, from src/, in one command (`npm run build`),
// run by `npm install` (prepare), `npm start` and `npm test` so that nothing stale ships:
// - the client SDK package, packages/client/dist: one ESM bundle for Node and browsers
//   (esbuild) and its type declarations (tsc);
// - the web pages every node serves, dist/web: the chat app (`/`) and the cluster page
//   (`/admin`), bundled with content-hashed asset names so they can be cached for good.
// `--web` builds only the pages (what `npm start` needs; a second or so).
import { build } from 'esbuild';
import type { Metafile } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const webOnly = process.argv.includes('--web');
const t0 = performance.now();

async function buildSdk(): Promise<void> {
  const out = join(root, 'packages/client/dist');
  rmSync(out, { recursive: true, force: true });
  await build({
    entryPoints: [join(root, 'src/client/index.ts')],
    outfile: join(out, 'index.js'),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    sourcemap: true,
    logLevel: 'warning',
  });
  // Declarations: tsc writes one .d.ts per source file; their imports name .ts files (the sources
  // run under type stripping), which an installed package must name as .js.
  const tsc = join(root, 'node_modules/.bin/tsc');
  execFileSync(tsc, ['-p', join(root, 'packages/client/tsconfig.json')], { stdio: 'inherit' });
  for (const f of walk(join(out, 'types'))) {
    if (!f.endsWith('.d.ts')) continue;
    const text = readFileSync(f, 'utf8').replace(/(from\s+['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2');
    writeFileSync(f, text);
  }
  writeFileSync(join(out, 'index.d.ts'), "export * from './types/client/index.js';\n");
}

// One HTML template for every page (src/web/page.html): its title and its bundles go in.
type Page = { name: string; entry: string; title: string };
const PAGES: Page[] = [
  { name: 'index', entry: 'src/web/chat/main.ts', title: 'imring chat' },
  { name: 'admin', entry: 'src/web/admin/main.ts', title: 'imring cluster' },
];

async function buildWeb(): Promise<void> {
  // Built beside, then swapped in: nodes running from this checkout keep serving whole pages.
  const final = join(root, 'dist/web');
  const out = join(root, `dist/web.new-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  const r = await build({
    entryPoints: PAGES.map((p) => join(root, p.entry)),
    outdir: join(out, 'assets'),
    entryNames: '[dir]-[hash]',
    assetNames: '[name]-[hash]',
    outbase: join(root, 'src/web'),
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
  });
  for (const p of PAGES) {
    const entry = relative(process.cwd(), join(root, p.entry));
    const [js, meta] = findOutput(r.metafile, entry);
    const css = meta.cssBundle;
    const src = (f: string) => `/assets/${basename(f)}`;
    const tags = [
      css ? `<link rel="stylesheet" href="${src(css)}">` : '',
      `<script type="module" src="${src(js)}"></script>`,
    ].join('\n    ');
    const html = readFileSync(join(root, 'src/web/page.html'), 'utf8').replace('<!-- title -->', p.title).replace('<!-- assets -->', tags);
    writeFileSync(join(out, `${p.name}.html`), html);
  }
  const old = join(root, `dist/web.old-${process.pid}`);
  if (existsSync(final)) renameSync(final, old);
  renameSync(out, final);
  rmSync(old, { recursive: true, force: true });
}

function findOutput(meta: Metafile, entry: string): [string, Metafile['outputs'][string]] {
  for (const [file, o] of Object.entries(meta.outputs)) {
    if (o.entryPoint && (o.entryPoint === entry || join(root, o.entryPoint) === join(root, entry))) return [file, o];
  }
  throw new Error(`no output for ${entry}`);
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const f = join(dir, name);
    if (statSync(f).isDirectory()) yield* walk(f);
    else yield f;
  }
}

function sizes(dir: string): string {
  return [...walk(dir)].filter((f) => !f.endsWith('.map')).map((f) => `${relative(root, f)} ${(statSync(f).size / 1024).toFixed(1)} KiB`).join(', ');
}

mkdirSync(join(root, 'dist'), { recursive: true });
if (!webOnly) await buildSdk();
await buildWeb();
console.log(`build: ${webOnly ? '' : 'packages/client/dist and '}dist/web in ${Math.round(performance.now() - t0)} ms (${sizes(join(root, 'dist/web/assets'))})`);
