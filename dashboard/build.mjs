// Builds the dashboard front-end into ../hitmetrix/web/static/dashboard/:
// replay.js + replay.css (the replay page, rrweb-player included) and
// sessions.js + sessions.css (the session list), team.js (copy buttons and confirmations on the team
// pages), onboarding.js (install snippet's copy button, first-event check, browser time zone) and
// live.js (the live page). Usage: npm run build
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'hitmetrix', 'web', 'static', 'dashboard');
// The replay bundle carries rrweb's replayer, rrdom, postcss (rrweb adapts recorded CSS) and svelte.
const GZIP_BUDGET_BYTES = {
  'replay.js': 100 * 1024,
  'sessions.js': 4 * 1024,
  'team.js': 2 * 1024,
  'onboarding.js': 4 * 1024,
  'live.js': 4 * 1024,
};

mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: ['replay.ts', 'sessions.ts', 'team.ts', 'onboarding.ts', 'live.ts'].map((name) => join(here, 'src', name)),
  outdir,
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2019',
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
});

const sizes = {};
for (const name of readdirSync(outdir).filter((n) => /\.(js|css)$/.test(n)).sort()) {
  const code = readFileSync(join(outdir, name));
  sizes[name] = { bytes: statSync(join(outdir, name)).size, gzip_bytes: gzipSync(code, { level: 9 }).length };
  console.log(`${name}: ${sizes[name].bytes} bytes, ${sizes[name].gzip_bytes} gzipped`);
  if (/\beval\(|new Function\(/.test(code.toString())) {
    console.error(`${name} uses eval or new Function, which the dashboard's CSP forbids`);
    process.exit(1);
  }
}
mkdirSync(join(here, 'dist'), { recursive: true });
writeFileSync(join(here, 'dist', 'size.json'), JSON.stringify(sizes, null, 1) + '\n');
for (const [name, budget] of Object.entries(GZIP_BUDGET_BYTES)) {
  if (sizes[name] && sizes[name].gzip_bytes > budget) {
    console.error(`${name} is over its size budget by ${sizes[name].gzip_bytes - budget} bytes gzipped`);
    process.exit(1);
  }
}
