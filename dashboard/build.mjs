// Builds the dashboard front-end into ../hitmetrix/web/static/dashboard/:
// replay.js + replay.css (the replay page, rrweb-player included) and
// sessions.js + sessions.css (the session list), team.js (copy buttons and confirmations on the team
// pages), onboarding.js (install snippet's copy button, first-event check, browser time zone) and
// live.js (the live page), overview.js + overview.css (the analytics overview: ECharts as SVG, with a world
// map from world-atlas). Usage: npm run build
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  // ECharts (line and map charts, SVG renderer, tree-shaken) and world-atlas's 1:110m countries.
  'overview.js': 250 * 1024,
};

// ECharts parses a map given as a string with `new Function` when the browser has no JSON.parse. We register
// maps as objects, so the branch never runs, but the CSP check below (rightly) refuses any `new Function` in a
// bundle: swap it for JSON.parse, and fail loudly if a new ECharts version moved it.
const echartsWithoutNewFunction = {
  name: 'echarts-without-new-function',
  setup(b) {
    b.onLoad({ filter: /[\\/]echarts[\\/]lib[\\/]coord[\\/]geo[\\/]GeoJSONResource\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const fallback = "new Function('return (' + source + ');')()";
      if (!source.includes(fallback)) {
        return { errors: [{ text: `${args.path} changed: check its JSON fallback and update build.mjs` }] };
      }
      return { contents: source.replace(fallback, 'JSON.parse(source)'), loader: 'js' };
    });
  },
};

const ENTRIES = ['replay.ts', 'sessions.ts', 'team.ts', 'onboarding.ts', 'live.ts', 'overview.ts'];
// One script per analytics page (each bundles only the ECharts parts it imports), built when its source exists.
const ANALYTICS_PAGES = [
  'trends.ts', 'funnels.ts', 'retention.ts', 'paths.ts', 'heatmaps.ts', 'vitals.ts', 'errors.ts', 'cohorts.ts',
  'saved_views.ts',
];
for (const name of ANALYTICS_PAGES) GZIP_BUDGET_BYTES[name.replace(/\.ts$/, '.js')] = 250 * 1024;

mkdirSync(outdir, { recursive: true });
await build({
  plugins: [echartsWithoutNewFunction],
  entryPoints: [...ENTRIES, ...ANALYTICS_PAGES.filter((name) => existsSync(join(here, 'src', name)))].map((name) =>
    join(here, 'src', name),
  ),
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
