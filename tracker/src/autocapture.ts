/**
 * Autocapture: pageviews (load and SPA navigation), clicks (with where in the element they landed, for
 * heatmaps), form submits, scroll depth, JS errors and pageleave. Never reads field values; masked areas
 * yield no text.
 */
import { emit } from './events';
import { BLOCK, cleanUrl, MASK } from './privacy';
import { flush } from './queue';
import { clip, later, now, safe, uuid } from './util';

const INTERACTIVE = 'a,button,input,select,textarea,label,summary,[role=button],[role=link]';
const MASKED = MASK + ',' + BLOCK;
const SIMPLE_NAME = /^[A-Za-z][\w-]*$/;
const MAX_ERRORS_PER_PAGE = 100;

let lastUrl = '';
let lastPage = '';
let viewStartMs = 0;
let maxScroll = 0;
let sentScroll = 0;
/** The current pageview's event id: its scroll reports name it, so a heatmap counts depth per pageview. */
let pageviewId = '';
let scrollTimer = 0;
let errorsSent = 0;
let maskAllText = false;

type Handler<E extends Event> = (e: E) => void;
const on = <E extends Event>(target: EventTarget, type: string, fn: Handler<E>, options?: AddEventListenerOptions | boolean): void =>
  target.addEventListener(type, safe(fn) as EventListener, options);

/**
 * Sees each click before it is sent (the frustration chunk, frustration.ts): it may add flags to `props` and
 * refer to the click later by `id`.
 */
export type ClickWatcher = (e: MouseEvent, id: string, props: Record<string, number>) => void;
export const clickWatchers: ClickWatcher[] = [];

const viewport = () => ({ vw: innerWidth, vh: innerHeight });
const round = Math.round;
const pageHeight = (): number =>
  Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
/** `v` within 0…`max`: a keyboard click has no pointer position, a zero-size element no fractions. */
const within = (v: number, max: number): number => Math.min(max, Math.max(0, v || 0));
const tagOf = (el: Element): string => clip(el.tagName.toLowerCase(), 32);

/** Max % of the page seen so far (bottom of the viewport / page height). */
function scrollDepth(): number {
  const height = pageHeight();
  return height ? Math.min(100, Math.round(((scrollY + innerHeight) / height) * 100)) : 100;
}

/** The URL that identifies a page: in-page anchors (#section) do not count, hash routes (#/, #!/) do. */
function pageKey(): string {
  const hash = location.hash;
  return location.href.slice(0, location.href.length - hash.length) + (/^#!?\//.test(hash) ? hash : '');
}

/**
 * Send the deepest scroll not yet reported: while scrolling (debounced) when 10 points deeper, and at the end of
 * the pageview (`last`: navigation or leave) whenever deeper, or if nothing was sent, so every pageview seen to
 * its end reports its maximum. The report names its pageview and that pageview's URL (on an SPA navigation the
 * location has already changed) and the viewport width (the heatmap's device bucket). The last report is not user
 * activity: leaving after 30 idle minutes must not start a new session.
 */
function flushScroll(last?: boolean): void {
  clearTimeout(scrollTimer);
  // At the end the current position counts too: a page never scrolled was seen to the bottom of its first screen.
  if (last) maxScroll = Math.max(maxScroll, scrollDepth());
  if (last ? maxScroll <= sentScroll : maxScroll < sentScroll + 10) return;
  sentScroll = maxScroll;
  emit('scroll', { url: clip(cleanUrl(lastUrl), 2048), ...viewport() }, { depth: maxScroll, dh: pageHeight(), pv: pageviewId }, last);
}

export function pageview(nav: 'load' | 'push' | 'replace' | 'pop', referrer: string = document.referrer): void {
  if (lastPage) flushScroll(true);
  lastUrl = location.href;
  lastPage = pageKey();
  viewStartMs = now();
  // Not measured now: a tracker in <head> runs before the page has a height (every page would read 100 %).
  maxScroll = 0;
  sentScroll = -1;
  pageviewId = uuid();
  emit('pageview', { id: pageviewId, title: clip(document.title, 512), referrer: clip(cleanUrl(referrer), 2048), ...viewport() }, { nav });
}

const navigated = (nav: 'push' | 'replace' | 'pop'): void => {
  if (pageKey() !== lastPage) pageview(nav, lastUrl);
};

/** Short stable CSS path: #id when there is one, else tag.classes:nth-of-type, up to 5 levels. */
export function cssPath(el: Element): string {
  const parts: string[] = [];
  for (let n: Element | null = el; n && parts.length < 5 && n !== document.documentElement; n = n.parentElement) {
    if (SIMPLE_NAME.test(n.id)) {
      parts.unshift('#' + n.id);
      break;
    }
    let part = n.tagName.toLowerCase();
    const classes = (n.getAttribute('class') || '').split(/\s+/).filter((c) => SIMPLE_NAME.test(c));
    if (classes.length) part += '.' + classes.slice(0, 3).join('.');
    const tag = n.tagName;
    const siblings = n.parentElement ? [].filter.call(n.parentElement.children, (c: Element) => c.tagName === tag) : [];
    if (siblings.length > 1) part += ':nth-of-type(' + ((siblings as Element[]).indexOf(n) + 1) + ')';
    parts.unshift(part);
  }
  return clip(parts.join(' > '), 512);
}

/** Visible text of a clicked element, empty for fields, editable or masked content. */
function clickText(el: Element): string {
  const html = el as HTMLElement;
  if (
    maskAllText ||
    /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) ||
    html.isContentEditable ||
    el.closest(MASKED) ||
    el.querySelector(MASKED + ',[contenteditable],input[type=password]') ||
    (el.textContent || '').length > 5000 // a large container: no meaningful label, avoid a costly layout
  ) {
    return '';
  }
  return clip((html.innerText || '').replace(/\s+/g, ' ').trim(), 100);
}

function reportError(message: unknown, source: unknown, line: unknown, col: unknown, error: unknown): void {
  if (errorsSent++ >= MAX_ERRORS_PER_PAGE) return;
  const stack = error && (error as Error).stack;
  emit('error', {}, { message: clip(message, 1000), source: cleanUrl(clip(source, 2048)), line: +(line as number) || 0, col: +(col as number) || 0, stack: clip(stack, 4000) }, true);
}

export function install(maskText: boolean): void {
  maskAllText = maskText;
  for (const [method, nav] of [['pushState', 'push'], ['replaceState', 'replace']] as const) {
    const original = history[method];
    history[method] = function (this: History, ...args: Parameters<History['pushState']>) {
      const result = original.apply(this, args); // the page's own errors propagate as before
      safe(navigated)(nav);
      return result;
    };
  }
  on(window, 'popstate', () => navigated('pop'));
  on(window, 'pageshow', (e: PageTransitionEvent) => e.persisted && pageview('pop')); // back from bfcache

  on(
    window,
    'click',
    (e: MouseEvent) => {
      if (!(e.target instanceof Element)) return;
      const el = e.target.closest(INTERACTIVE) || e.target;
      // Where in the element (px and fractions of its box): a heatmap puts the click on the same element of the
      // page replayed at another width, where page coordinates would miss it.
      const box = el.getBoundingClientRect();
      const ox = within(e.clientX - box.left, box.width);
      const oy = within(e.clientY - box.top, box.height);
      const props: Record<string, number> = {
        ox: round(ox), oy: round(oy),
        fx: round(within(ox / box.width, 1) * 1e3) / 1e3, fy: round(within(oy / box.height, 1) * 1e3) / 1e3,
        ew: round(box.width), eh: round(box.height),
        dw: document.documentElement.scrollWidth, dh: pageHeight(),
      };
      // emit keeps an id given in the fields: the one the watchers may refer to later.
      const fields = {
        id: uuid(), selector: cssPath(el), tag: tagOf(el), text: clickText(el), x: round(e.pageX), y: round(e.pageY),
      };
      clickWatchers.forEach((watch) => watch(e, fields.id, props));
      emit('click', { ...fields, ...viewport() }, props);
    },
    true,
  );
  on(
    window,
    'submit',
    (e: Event) => e.target instanceof Element && emit('submit', { selector: cssPath(e.target), tag: tagOf(e.target) }),
    true,
  );

  on(
    window,
    'scroll',
    () => {
      maxScroll = Math.max(maxScroll, scrollDepth());
      clearTimeout(scrollTimer);
      scrollTimer = later(flushScroll, 500);
    },
    { passive: true },
  );

  on(window, 'error', (e: ErrorEvent) => e.message !== undefined && reportError(e.message, e.filename, e.lineno, e.colno, e.error));
  on(window, 'unhandledrejection', (e: PromiseRejectionEvent) => {
    const reason = e.reason as { message?: unknown } | undefined;
    reportError(reason && reason.message !== undefined ? reason.message : String(reason), '', 0, 0, reason);
  });

  on(window, 'pagehide', () => {
    flushScroll(true);
    emit('pageleave', {}, { duration_ms: now() - viewStartMs, max_scroll: maxScroll, dh: pageHeight() }, true);
    flush(true);
  });
  on(document, 'visibilitychange', () => document.visibilityState === 'hidden' && flush(true));
}
