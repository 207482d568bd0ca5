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

/**
 * rrweb's canvas recording (a worker inlined as a string, 2D and WebGL hooks) weighs ~3 KB
 * gzipped and the tracker never turns it on (recordCanvas stays false): its manager is swapped
 * for a stub with the methods rrweb calls, so esbuild drops the rest. The build fails if the
 * pinned rrweb is laid out differently, rather than ship a half-edited copy.
 */
const withoutCanvasRecording = {
  name: 'rrweb-without-canvas-recording',
  setup(b) {
    b.onLoad({ filter: /[\\/]@rrweb[\\/]record[\\/]dist[\\/]record\.js$/ }, ({ path }) => {
      const source = readFileSync(path, 'utf8');
      const from = source.indexOf('\nconst jsContent = ');
      const to = source.indexOf('\nclass StylesheetManager {');
      const cut = source.slice(from, to);
      const expected = ['const jsContent', 'const blob', 'function WorkerWrapper', 'class CanvasManager'];
      const declared = cut.match(/^(const|let|var|function|class) \w+/gm) || [];
      if (from < 0 || to < from || declared.join() !== expected.join()) {
        throw new Error(`${path}: not the rrweb layout this build edits (found ${declared.join(', ')})`);
      }
      const stub = '\nclass CanvasManager { reset() {} freeze() {} unfreeze() {} lock() {} unlock() {} }';
      return { contents: source.slice(0, from) + stub + source.slice(to), loader: 'js' };
    });
  },
};

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
  // The tracker never writes to the host page's console; rrweb's warnings go too.
  drop: ['console'],
  plugins: [withoutCanvasRecording],
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
