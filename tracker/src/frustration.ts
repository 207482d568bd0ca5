/**
 * The frustration feature (hm-frustration.js, loaded unless the project's tracker-config turns it off): signals
 * of a visitor struggling with the page, observed where only the browser can see them.
 * - rage click: the click that completes 3 clicks within 1 s within 30 px gets `rage: 1` in its props (once a
 *   burst: the clicks after it in the same burst are not flagged again);
 * - dead click: no DOM change, navigation or network response within 1 s of a click: a custom event
 *   `$dead_click` {click: the click's event id}, sent 1 s later (the click itself has left by then);
 * - error click: a JS error within 1 s of a click: `$error_click` {click} for the latest such click, which is
 *   then not also a dead click;
 * - thrashed cursor: 5 reversals of the mouse's direction (legs of 40 px or more) within 2 s:
 *   `$thrashed_cursor` {turns};
 * - excessive scrolling: within 20 s without a click, 5 reversals of the scroll direction (legs of 100 px or
 *   more) or a scrolled distance of 3 page heights: `$excessive_scroll` {turns, px, dh}, once a page.
 * Clicks that are not checked for dead or error: on fields, labels and editable text (they respond without a DOM
 * change), the end of a text selection drag, with a modifier key, on links that open elsewhere, on the page
 * background, and those a script made. Nothing here reads text or values.
 */
import type { ClickWatcher } from './autocapture';
import { budget, guard, host } from './redact';

const CLICK_WINDOW_MS = 1000;
const RAGE_CLICKS = 3;
const RAGE_RADIUS_PX = 30;
const THRASH_TURNS = 5;
const THRASH_WINDOW_MS = 2000;
const THRASH_LEG_PX = 40;
/** Pointer moves shorter than this are not looked at: the sampling that keeps a busy mouse cheap. */
const MOVE_STEP_PX = 8;
const SCROLL_TURNS = 5;
const SCROLL_LEG_PX = 100;
const SCROLL_PAGES = 3;
const SCROLL_WINDOW_MS = 20000;
const MAX_PENDING_CLICKS = 20;
const MAX_SIGNALS_PER_MINUTE = 30;
const NOT_CHECKED = 'input,textarea,select,option,label,[contenteditable],a[download],a[target]:not([target=_self])';

interface Pending {
  id: string;
  atMs: number;
  href: string;
  click: MouseEvent;
  answered?: boolean;
  failed?: boolean;
}

const limit = budget(MAX_SIGNALS_PER_MINUTE);
const pending: Pending[] = [];
let rage: { atMs: number; x: number; y: number }[] = [];
let raging = false;
let submitted: Event | undefined;
let watching = false;
/** `window.__hmFrustration` once installed: `checked` counts the clicks whose second is over (tests wait on it). */
const seen = { checked: 0 };

const send = (name: string, props: object): void => {
  const h = host();
  if (h && limit.take()) h.track(name, props);
};

/** A response to the pending clicks: the DOM changed, or a request (not Hitmetrix's own) answered. */
const answer = (atMs: number): void => pending.forEach((p) => atMs >= p.atMs && (p.answered = true));

const mutations = new MutationObserver(guard(() => answer(performance.now())));

let responses: PerformanceObserver | undefined;
const ownRequest = (url: string): boolean => {
  const api = (host() || { api: '' }).api;
  return !!api && (url.indexOf(api) == 0 || url.indexOf(api.slice(0, -7) + 'static/hm') == 0);
};
const takeResponses = guard((entries: PerformanceEntryList) => {
  for (const entry of entries) {
    if (!ownRequest(entry.name)) answer((entry as PerformanceResourceTiming).responseEnd);
  }
});

/** Observe the DOM only while a click waits for its answer: a busy page costs nothing the rest of the time. */
function watch(on: boolean): void {
  if (on == watching) return;
  watching = on;
  if (on) mutations.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
  else mutations.disconnect();
}

const settle = guard((p: Pending) => {
  const i = pending.indexOf(p);
  if (i < 0) return; // the page was left meanwhile
  if (responses) takeResponses(responses.takeRecords());
  pending.splice(i, 1);
  watch(pending.length > 0);
  const link = (p.click.target as Element).closest('a[href]');
  const navigating =
    location.href != p.href ||
    (link && !p.click.defaultPrevented) ||
    (submitted && submitted.timeStamp >= p.click.timeStamp && !submitted.defaultPrevented);
  if (!p.failed && !p.answered && !navigating) send('$dead_click', { click: p.id });
  seen.checked++;
});

function isRage(e: MouseEvent, atMs: number): boolean {
  const here = { atMs, x: e.clientX, y: e.clientY };
  rage = rage.filter(
    (c) => atMs - c.atMs <= CLICK_WINDOW_MS && Math.hypot(c.x - here.x, c.y - here.y) <= RAGE_RADIUS_PX,
  );
  rage.push(here);
  if (rage.length < RAGE_CLICKS) return (raging = false);
  return !raging && (raging = true);
}

const onClick: ClickWatcher = guard((e: MouseEvent, id: string, props: Record<string, number>) => {
  if (!e.isTrusted) return;
  const atMs = performance.now();
  scrolling.reset(atMs);
  // A keyboard's click (detail 0) has no position to be near another one.
  if (e.detail && isRage(e, atMs)) props.rage = 1;
  const target = e.target as Element;
  const selection = getSelection();
  if (
    e.ctrlKey || e.metaKey || e.shiftKey || e.altKey ||
    target == document.documentElement || target == document.body ||
    (target as HTMLElement).isContentEditable || target.closest(NOT_CHECKED) ||
    (selection && !selection.isCollapsed) ||
    pending.length >= MAX_PENDING_CLICKS
  ) {
    return;
  }
  const p: Pending = { id, atMs, href: location.href, click: e };
  pending.push(p);
  watch(true);
  setTimeout(() => settle(p), CLICK_WINDOW_MS);
});

const onError = guard(() => {
  const nowMs = performance.now();
  for (let i = pending.length - 1; i >= 0; i--) {
    const p = pending[i];
    if (nowMs - p.atMs > CLICK_WINDOW_MS) break;
    if (!p.failed) send('$error_click', { click: p.id });
    p.failed = true; // the latest click is blamed, once
    break;
  }
});

/** Direction reversals along one axis, looked at once the pointer moved MOVE_STEP_PX or more. */
function axis(legPx: number) {
  let last = NaN;
  let dir = 0;
  let leg = 0;
  return (v: number): boolean => {
    const d = v - last;
    if (last == last && Math.abs(d) < MOVE_STEP_PX) return false;
    last = v;
    if (d != d) return false;
    const turned = Math.sign(d) != dir && dir != 0 && leg >= legPx;
    if (Math.sign(d) != dir) leg = 0;
    dir = Math.sign(d);
    leg += Math.abs(d);
    return turned;
  };
}

const pointerX = axis(THRASH_LEG_PX);
const pointerY = axis(THRASH_LEG_PX);
let turns: number[] = [];

const onMove = guard((e: PointerEvent) => {
  if (e.pointerType != 'mouse') return; // a finger dragging is not a thrashed cursor
  const atMs = performance.now();
  // Both axes look at every move: each keeps its own last position.
  const x = pointerX(e.clientX);
  const y = pointerY(e.clientY);
  if (!x && !y) return;
  turns = turns.filter((t) => atMs - t <= THRASH_WINDOW_MS);
  turns.push(atMs);
  if (turns.length >= THRASH_TURNS) {
    send('$thrashed_cursor', { turns: turns.length });
    turns = [];
  }
});

const scrolling = {
  sinceMs: 0,
  turns: 0,
  px: 0,
  last: scrollY,
  dir: 0,
  leg: 0,
  sentFor: '',
  reset(atMs: number): void {
    scrolling.sinceMs = atMs;
    scrolling.turns = scrolling.px = 0;
  },
};

const onScroll = guard(() => {
  const s = scrolling;
  const atMs = performance.now();
  const d = scrollY - s.last;
  s.last = scrollY;
  if (!d) return;
  if (atMs - s.sinceMs > SCROLL_WINDOW_MS) s.reset(atMs);
  if (Math.sign(d) != s.dir) {
    if (s.dir && s.leg >= SCROLL_LEG_PX) s.turns++;
    s.dir = Math.sign(d);
    s.leg = 0;
  }
  s.leg += Math.abs(d);
  s.px += Math.abs(d);
  const dh = document.documentElement.scrollHeight;
  if (s.sentFor != location.href && (s.turns >= SCROLL_TURNS || s.px >= SCROLL_PAGES * dh)) {
    s.sentFor = location.href;
    send('$excessive_scroll', { turns: s.turns, px: Math.round(s.px), dh });
  }
});

function install(): void {
  const w = window as unknown as { __hmFrustration?: object };
  const h = host();
  if (w.__hmFrustration || !h || !h.clicks) return; // loaded twice, or without the tracker (or an older one)
  w.__hmFrustration = seen;
  h.clicks.push(onClick);
  try {
    responses = new PerformanceObserver((list) => takeResponses(list.getEntries()));
    responses.observe({ type: 'resource' });
  } catch (e) {
    responses = undefined; // no resource timing: DOM changes and navigation still answer
  }
  const opts = { capture: true, passive: true };
  addEventListener('error', (e) => e instanceof ErrorEvent && onError());
  addEventListener('unhandledrejection', onError);
  addEventListener('submit', guard((e: Event) => (submitted = e)), opts);
  addEventListener('pointermove', onMove as EventListener, opts);
  addEventListener('scroll', onScroll, { passive: true });
  // Leaving the page answers every click still waiting: it navigated.
  addEventListener('pagehide', guard(() => (pending.length = 0)));
}

guard(install)();
