/**
 * Browser automation signals, sent once per page as the event `signals` (issue 8, contract C): what the
 * browser says about itself (navigator.webdriver, headless hints, a user agent its client hints contradict,
 * touch, a hash of coarse device traits) and how the page was used until then (pointer moves, clicks, clicks
 * with no pointer move before them, keys and the time between them: never which key). Sent at the first
 * click outside a form field or Enter (a bot submits its form then, often just before it leaves), else 10 s
 * after load, else when the page is hidden. Key intervals (ms) are `{median, mad, min}`, all 0 below two intervals.
 * Written small: it is in the core bundle, under its size budget.
 */
import { emit } from './events';
import { flush } from './queue';
import { later, safe } from './util';

const gaps: number[] = [];
let moves = 0;
let clicks = 0;
let blind = 0;
let keys = 0;
let moved = 0;
let lastKey = 0;
let sent = 0;

const median = (v: number[]): number => {
  const s = v.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length & 1 ? s[m] : m ? (s[m - 1] + s[m]) / 2 : 0;
};

function send(): void {
  if (sent++) return;
  const n = navigator as Navigator & { userAgentData?: { brands: { brand: string }[] } };
  const ua = n.userAgent;
  const chrome = /Chrome\//.test(ua);
  const headless = [];
  if (/HeadlessChrome/.test(ua)) headless.push('HeadlessChrome');
  if (!(n.plugins || '').length) headless.push('no-plugins');
  if (!(n.languages || '').length) headless.push('no-languages');
  if (chrome && !(window as { chrome?: object }).chrome) headless.push('no-window-chrome');
  const ch = n.userAgentData;
  const med = median(gaps);
  // Coarse device traits, hashed (FNV-1a, two seeds) to 16 hex characters.
  const traits = [screen.width, screen.height, screen.colorDepth, devicePixelRatio, n.hardwareConcurrency,
    n.maxTouchPoints, n.language, n.platform, new Date().getTimezoneOffset()].join();
  let device = '';
  for (let h = 0, seed = 2166136261; !device[9]; seed = 1540483477, device += (h >>> 0).toString(16).padStart(8, '0')) {
    for (let i = 0, h0 = seed; i < traits.length; i++) h = h0 = Math.imul(h0 ^ traits.charCodeAt(i), 16777619);
  }
  emit('signals', {}, {
    webdriver: !!n.webdriver,
    headless,
    ua_ch_mismatch: !!ch && ch.brands.some((b) => /Chrom/.test(b.brand)) != chrome,
    pointer_moves: moves,
    clicks,
    clicks_without_move: blind,
    keys,
    key_interval_ms: { median: med, mad: median(gaps.map((g) => Math.abs(g - med))), min: Math.min(...gaps, 1e9) % 1e9 },
    touch: n.maxTouchPoints > 0,
    device,
  }, true);
}

/** Count for this page: passive capture-phase listeners, which the page can neither slow nor hide events from. */
export function startSignals(): void {
  const on = (t: string, f: (e: Event & MouseEvent & KeyboardEvent) => unknown): void =>
    addEventListener(t, safe(f) as EventListener, { capture: true, passive: true });
  on('pointermove', () => moves++ + moved++);
  on('click', (e) => {
    // Enter on a button is a trusted click with detail 0: no pointer was meant to move.
    if (e.detail || !e.isTrusted) {
      clicks++;
      if (!moved) blind++;
    }
    moved = 0;
    // Clicking into a field starts typing: wait for Enter, another click, 10 s or leaving, so the cadence counts.
    if (!/^(INPUT|TEXTAREA|SELECT)$/.test((e.target as Element).tagName)) send();
  });
  on('keydown', (e) => {
    if (keys++ && gaps.length < 500) gaps.push(Math.round(e.timeStamp - lastKey));
    lastKey = e.timeStamp;
    if (e.key == 'Enter') send();
  });
  // The core flushed when the page was hidden, perhaps before this listener: flush again.
  on('visibilitychange', () => document.visibilityState == 'hidden' && !sent && (send(), flush(true)));
  on('pagehide', () => !sent && (send(), flush(true)));
  later(send, 10000);
}
