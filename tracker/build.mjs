// Builds the tracker into ../hitmetrix/web/static/hm.js and enforces the size budget.
// Usage: npm run build   (exits 1 when the gzipped bundle is over budget)
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, '..', 'hitmetrix', 'web', 'static', 'hm.js');
const GZIP_BUDGET_BYTES = 25 * 1024; // rrweb included: under Microsoft Clarity's 26 KB (issue 10)

/**
 * rrweb's canvas recording (a worker inlined as a string, 2D and WebGL hooks) weighs ~3 KB
 * gzipped and the tracker never turns it on (recordCanvas stays false): its manager is swapped
 * for a stub with the methods rrweb calls, so esbuild drops the rest.
 */
function withoutCanvasRecording(source, path) {
  const from = source.indexOf('\nconst jsContent = ');
  const to = source.indexOf('\nclass StylesheetManager {');
  const cut = source.slice(from, to);
  const expected = ['const jsContent', 'const blob', 'function WorkerWrapper', 'class CanvasManager'];
  const declared = cut.match(/^(const|let|var|function|class) \w+/gm) || [];
  if (from < 0 || to < from || declared.join() !== expected.join()) {
    throw new Error(`${path}: not the rrweb layout this build edits (found ${declared.join(', ')})`);
  }
  const stub = '\nclass CanvasManager { reset() {} freeze() {} unfreeze() {} lock() {} unlock() {} }';
  return source.slice(0, from) + stub + source.slice(to);
}

/**
 * rrweb's relay of cross-origin iframes' recordings (id remapping of every event kind, ~1 KB
 * gzipped) runs only with recordCrossOriginIframes, which the tracker never turns on: the
 * remapping methods and their id mirror become no-ops.
 */
function withoutCrossOriginIframes(source, path) {
  const from = source.indexOf('\n  handleMessage(message) {');
  const to = source.indexOf('\n}\nclass ShadowDomManager {');
  const methods = source.slice(from, to).match(/^ {2}\w+(?=\()/gm) || [];
  const expected = ['handleMessage', 'transformCrossOriginEvent', 'replace', 'replaceIds', 'replaceStyleIds',
    'replaceIdOnNode', 'patchRootIdOnNode'].map((m) => '  ' + m);
  const mirrorFrom = source.indexOf('\nclass CrossOriginIframeMirror {');
  const mirrorTo = source.indexOf('\nclass IframeManager {');
  if (from < 0 || to < from || methods.join() !== expected.join() || mirrorFrom < 0 || mirrorTo < mirrorFrom) {
    throw new Error(`${path}: not the rrweb layout this build edits (IframeManager has ${methods.join(',')})`);
  }
  return source.slice(0, mirrorFrom) + '\nclass CrossOriginIframeMirror { reset() {} }' +
    source.slice(mirrorTo, from) + '\n  handleMessage() {}' + source.slice(to);
}

/**
 * rrweb serialises stylesheets from the CSSOM, which loses declarations (src/css.ts says which):
 * its stringifyStylesheet goes through sheetText, and stringifyRule reads ruleText instead of cssText.
 */
function withLosslessStylesheets(source, path) {
  const edits = [
    ['function stringifyStylesheet(s) {',
      'function stringifyStylesheet(s) {\n  return hmSheetText(s, rrwebStringifyStylesheet, absolutifyURLs);\n}\n' +
      'function rrwebStringifyStylesheet(s) {'],
    ['    let ruleStringified = rule.cssText;\n', '    let ruleStringified = hmRuleText(rule);\n'],
  ];
  for (const [from, to] of edits) {
    if (source.split(from).length !== 2) throw new Error(`${path}: not the rrweb layout this build edits (${from})`);
    source = source.replace(from, to);
  }
  const css = JSON.stringify(join(here, 'src', 'css.ts'));
  return `import { sheetText as hmSheetText, ruleText as hmRuleText } from ${css};\n` + source;
}

/** The build fails if the pinned rrweb is laid out differently, rather than ship a half-edited copy. */
const editedRrweb = {
  name: 'edited-rrweb',
  setup(b) {
    b.onLoad({ filter: /[\\/]@rrweb[\\/]record[\\/]dist[\\/]record\.js$/ }, ({ path }) => {
      let source = readFileSync(path, 'utf8');
      for (const edit of [withoutCanvasRecording, withoutCrossOriginIframes, withLosslessStylesheets]) {
        source = edit(source, path);
      }
      return { contents: source, loader: 'js' };
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
  plugins: [editedRrweb],
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
