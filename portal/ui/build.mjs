// Builds the UI into dist/ (or the directory given as the first argument):
//
//	dist/index.html          the page (served at /)
//	dist/assets/app.js       the bundled, minified app (src/main.tsx)
//	dist/assets/app.css      its styles (src/app.css)
//	dist/assets/favicon.svg
//
// The output depends only on src/ and the pinned packages: no timestamps,
// no content hashes in names, no source maps, so verify.sh can compare a
// fresh build with the checked-in dist/ byte for byte.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, 'dist'));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.tsx' },
  outdir: join(out, 'assets'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  charset: 'utf8',
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
});

copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));
copyFileSync(join(here, 'src/favicon.svg'), join(out, 'assets/favicon.svg'));
