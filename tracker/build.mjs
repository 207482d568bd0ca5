// Builds the tracker into ../hitmetrix/web/static/hm.js and enforces the size budget.
// Usage: npm run build   (exits 1 when the gzipped bundle is over budget)
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, '..', 'hitmetrix', 'web', 'static', 'hm.js');
const GZIP_BUDGET_BYTES = 30 * 1024; // rrweb included

mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'index.ts')],
  outfile,
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2018',
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
});

const code = readFileSync(outfile);
const size = { bytes: code.length, gzip_bytes: gzipSync(code, { level: 9 }).length };
mkdirSync(join(here, 'dist'), { recursive: true });
writeFileSync(join(here, 'dist', 'size.json'), JSON.stringify(size) + '\n');
console.log(`hm.js: ${size.bytes} bytes, ${size.gzip_bytes} bytes gzipped (budget ${GZIP_BUDGET_BYTES})`);
if (size.gzip_bytes > GZIP_BUDGET_BYTES) {
  console.error(`hm.js is over its size budget by ${size.gzip_bytes - GZIP_BUDGET_BYTES} bytes gzipped`);
  process.exit(1);
}
