// Builds the tracker into ../hitmetrix/web/static/hm.js and its optional chunks beside it (hm-console.js,
// hm-network.js, hm-vitals.js: loaded only when a project turns them on; hm-frustration.js: loaded unless the
// project turns it off; see src/features.ts), and enforces the size budgets.
// Usage: npm run build   (exits 1 when a gzipped bundle is over its budget)
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, '..', 'hitmetrix', 'web', 'static', 'hm.js');
const GZIP_BUDGET_BYTES = 25 * 1024; // rrweb included: under Microsoft Clarity's 26 KB (issue 10)
// The optional chunks, each loaded on its own: name -> gzip budget (web-vitals is most of hm-vitals.js).
const CHUNK_GZIP_BUDGET_BYTES = { console: 3 * 1024, network: 3 * 1024, vitals: 4 * 1024, frustration: 2 * 1024 };

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

/**
 * Options the tracker never sets (recorder.ts): no `hooks`, so rrweb's wrapping of every observer callback
 * to call them first is left out; and collectFonts stays false, so its FontFace observer never runs
 * (~0.65 KB gzipped together: room in the core for the optional features' loader and the bot signals).
 */
function withoutUnusedOptions(source, path) {
  const cuts = [
    ['\nfunction initFontObserver({ fontCb, doc }) {', '\nfunction initSelectionObserver(param) {',
      '\nfunction initFontObserver() { return () => {}; }'],
    ['\nfunction mergeHooks(o, hooks) {', '\nfunction initObservers(o, hooks = {}) {', '\nfunction mergeHooks() {}'],
  ];
  for (const [from, to, stub] of cuts) {
    const i = source.indexOf(from);
    const j = source.indexOf(to);
    const declared = i < 0 || j < i ? [] : source.slice(i, j).match(/^(const|let|var|function|class) \w+/gm) || [];
    if (source.split(from).length !== 2 || declared.length !== 1) {
      throw new Error(`${path}: not the rrweb layout this build edits (${from.trim()})`);
    }
    source = source.slice(0, i) + stub + source.slice(j);
  }
  return source;
}

/**
 * rrweb's inlining of <img> pixels into the snapshot (a canvas per image, crossOrigin retries) runs only with
 * inlineImages, which the tracker never sets (the server captures images itself, hitmetrix/assets); and its
 * test of a 2D canvas for blankness runs only on canvases its canvas recording (left out above) marked. Both
 * cut, so that the core can carry the constructed stylesheets' text (src/css.ts watchSheets). The canvas
 * snapshot stays: recordCanvas serialises any canvas's pixels without them.
 */
function withoutInlineImages(source, path) {
  const from = source.indexOf('\n  if (tagName === "img" && inlineImages) {');
  const to = source.indexOf('\n  if (["audio", "video"].includes(tagName)) {');
  const cut = source.slice(from, to);
  if (from < 0 || to < from || source.split('inlineImages) {').length !== 2 || !cut.includes('recordInlineImage')) {
    throw new Error(`${path}: not the rrweb layout this build edits (inlineImages)`);
  }
  source = source.slice(0, from) + source.slice(to);
  const marked = /\n {4}if \(n\.__context === "2d"\) \{\n {6}if \(!is2DCanvasBlank\(n\)\) \{\n[^}]*\}\n {4}\} else if \(!\("__context" in n\)\) \{/;
  if (source.split(marked).length !== 2) throw new Error(`${path}: not the rrweb layout this build edits (canvas)`);
  return source.replace(marked, '\n    {');
}

/**
 * rrweb-snapshot tests `node instanceof BaseRRNode` (its virtual DOM, used by the replayer only) to read a shadow
 * root; a recorded page's nodes are never RRNodes, so the class stays as an empty stub that no node is an instance
 * of (~0.3 KB gzipped: room in the core for the heatmap's click geometry, issue 9).
 */
function withoutVirtualDomNodes(source, path) {
  const from = source.indexOf('\nclass BaseRRNode {');
  const to = source.indexOf('\n}\n', from);
  const uses = source.split('BaseRRNode').length - 1;
  if (from < 0 || to < from || uses !== 3 || !source.includes('n instanceof BaseRRNode && "shadowRoot" in n')) {
    throw new Error(`${path}: not the rrweb layout this build edits (BaseRRNode, ${uses} uses)`);
  }
  return source.slice(0, from) + '\nclass BaseRRNode {' + source.slice(to);
}

/**
 * rrweb's TypeScript enums (EventType, IncrementalSource …) compile to objects with a reverse mapping (number to
 * name) that rrweb never reads: plain objects of name to number instead (~0.2 KB gzipped).
 */
function withPlainEnums(source, path) {
  const entry = / {2}\2\[\2\["\w+"\] = \d+\] = "\w+";\n/.source;
  const head = String.raw`\nvar (\w+) = /\* @__PURE__ \*/ \(\((\w+)\) => \{\n`;
  const tail = String.raw` {2}return \2;\n\}\)\(\1 \|\| \{\}\);`;
  const pattern = new RegExp(`${head}((?:${entry})+)${tail}`, 'g');
  let count = 0;
  source = source.replace(pattern, (_, name, inner, body) => {
    count++;
    const entries = [...body.matchAll(/\["(\w+)"\] = (\d+)\]/g)].map((m) => `"${m[1]}": ${m[2]}`);
    return `\nvar ${name} = { ${entries.join(', ')} };`;
  });
  // A reverse lookup (Enum[number]) would now read undefined: the build refuses rather than ship that.
  const enums = 'EventType|IncrementalSource|MouseInteractions|MediaInteractions|NodeType|CanvasContext|PointerTypes';
  if (count !== 7 || new RegExp(String.raw`\b(${enums})\[(?!"|eventKey\]|thisEventKey\])`).test(source)) {
    throw new Error(`${path}: not the rrweb layout this build edits (${count} enums, or a reverse lookup)`);
  }
  return source;
}

/** The build fails if the pinned rrweb is laid out differently, rather than ship a half-edited copy. */
const editedRrweb = {
  name: 'edited-rrweb',
  setup(b) {
    b.onLoad({ filter: /[\\/]@rrweb[\\/]record[\\/]dist[\\/]record\.js$/ }, ({ path }) => {
      let source = readFileSync(path, 'utf8');
      for (const edit of [withoutCanvasRecording, withoutCrossOriginIframes, withoutUnusedOptions,
        withoutInlineImages, withoutVirtualDomNodes, withPlainEnums, withLosslessStylesheets]) {
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

// The chunks reach the core through window.hitmetrix._host (src/redact.ts): no rrweb, nothing shared by import.
for (const name of Object.keys(CHUNK_GZIP_BUDGET_BYTES)) {
  await build({
    entryPoints: [join(here, 'src', `${name}.ts`)],
    outfile: join(dirname(outfile), `hm-${name}.js`),
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2018',
    platform: 'browser',
    legalComments: 'none',
    logLevel: 'warning',
  });
}

const gzipSize = (file) => {
  const code = readFileSync(file);
  return { bytes: code.length, gzip_bytes: gzipSync(code, { level: 9 }).length };
};
const size = gzipSize(outfile);
const budgets = { 'hm.js': GZIP_BUDGET_BYTES };
const chunks = {};
for (const [name, budget] of Object.entries(CHUNK_GZIP_BUDGET_BYTES)) {
  chunks[`hm-${name}.js`] = gzipSize(join(dirname(outfile), `hm-${name}.js`));
  budgets[`hm-${name}.js`] = budget;
}
mkdirSync(join(here, 'dist'), { recursive: true });
writeFileSync(join(here, 'dist', 'size.json'), JSON.stringify({ ...size, chunks }) + '\n');
let over = false;
for (const [file, { bytes, gzip_bytes }] of Object.entries({ 'hm.js': size, ...chunks })) {
  console.log(`${file}: ${bytes} bytes, ${gzip_bytes} bytes gzipped (budget ${budgets[file]})`);
  if (gzip_bytes > budgets[file]) {
    console.error(`${file} is over its size budget by ${gzip_bytes - budgets[file]} bytes gzipped`);
    over = true;
  }
}
if (over) process.exit(1);
