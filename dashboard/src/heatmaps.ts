/**
 * Heatmap page: replays the backdrop pageview's recording (the page embeds the same answer as
 * GET /api/v1/projects/{id}/heatmaps as a data island) in the replay page's sandboxed iframe, its events made
 * inert by the same sanitiser and its assets rewritten to the dashboard's captured copies, then draws the
 * clicks or the scroll depth over it.
 *
 * The page is rebuilt at the recorded width (or at `?at=` px: the heatmap of one width drawn on the page laid
 * out for another), as tall as its document, and scaled down to fit the column. Each click cell is put on its
 * element (the CSS path the tracker sent, found in the replayed document) at its offset as a fraction of the
 * element's box, so it lands on the same element at any width; a path that finds nothing visible falls back to
 * the click's document position as fractions of the page's width and height. Scroll depth is drawn as bands
 * with the share of pageviews that reached each.
 *
 * `window.hmHeatmap` says what was drawn, for tests.
 */
import { Replayer } from '@rrweb/replay';
import './heatmaps.css';
import { fetchAssetMap } from './assets';
import { BLOCKED_STYLE_RULES, markBlocked } from './blocked';
import { SessionApi } from './chunks';
import { pinNoReferrer, postFormsWithOrigin } from './replaydoc';
import { RecordedEvent, RecordingSanitiser } from './sanitise';

const FULL_SNAPSHOT_EVENT = 2;
const META_EVENT = 4;
/** The page is shown as it was this long after its pageview (late content in), unless it was left sooner. */
const SETTLE_MS = 1500;
/** A snapshot this close after the pageview event is that pageview's (the tracker snapshots right after it). */
const SNAPSHOT_SLACK_MS = 3000;
const MAX_PAGE_HEIGHT_PX = 20000;
const BLANK_PAGE_HEIGHT_PX = 2400;
/** Widths to lay the page out at when the backdrop was recorded in another bucket. */
const BUCKET_WIDTH_PX: Record<string, number> = { desktop: 1280, tablet: 820, mobile: 375 };
const DOT_PX = 28;
/** `?at=` outside these is ignored (px): narrower than any phone, or wider than any screen. */
const MIN_WIDTH_PX = 240;
const MAX_WIDTH_PX = 3840;

type Cell = [number, number, number, number, number]; // fx, fy, clicks, xf, yf
interface Element {
  selector: string;
  clicks: number;
  rage_clicks: number;
  dead_clicks: number;
  offsets: Cell[];
}
interface Backdrop {
  session_id: string;
  client_ts_ms: number;
  viewport_w: number;
  viewport_h: number;
  in_bucket: boolean;
}
interface Island {
  heatmap: {
    width: string;
    kind: string;
    elements: Element[];
    positions: [number, number, number][];
    scroll: { pageviews: number; reached: { depth: number; pageviews: number; percent: number }[] };
    backdrops: Backdrop[];
  };
  project: number;
  can_replay: boolean;
  media_origins: string[];
  at: string;
}

/** What tests (and curious developers) can read from the page. */
export interface HmHeatmap {
  ready: boolean;
  error: string | null;
  /** 'replay' when drawn over a recording, 'blank' otherwise. */
  backdrop: 'replay' | 'blank' | null;
  widthPx: number;
  heightPx: number;
  scale: number;
  dots: number;
  placed: { element: number; position: number };
  bands: number;
}

const state: HmHeatmap = {
  ready: false, error: null, backdrop: null, widthPx: 0, heightPx: 0, scale: 1, dots: 0,
  placed: { element: 0, position: 0 }, bands: 0,
};
(window as unknown as { hmHeatmap: HmHeatmap }).hmHeatmap = state;

function readIsland(): Island | null {
  const el = document.getElementById('hm-heatmap-data');
  try {
    return el && el.dataset.json ? (JSON.parse(el.dataset.json) as Island) : null;
  } catch (e) {
    return null;
  }
}

/** Blue → green → yellow → red as `t` goes 0 → 1. */
function heat(t: number, alpha: number): string {
  const hue = Math.round(240 * (1 - Math.max(0, Math.min(1, t))));
  return `hsla(${hue}, 100%, 50%, ${alpha})`;
}

/** The sanitised recording of a session up to a little after `afterMs` (the visitor's clock). */
async function recordingUntil(island: Island, b: Backdrop): Promise<RecordedEvent[]> {
  const api = new SessionApi(String(island.project), b.session_id);
  const sanitiser = new RecordingSanitiser([location.origin, ...island.media_origins]);
  try {
    const map = await fetchAssetMap(String(island.project), b.session_id);
    sanitiser.setAssets(map.assets, location.origin);
  } catch (e) {
    console.warn('heatmap: the captured assets could not be listed; the replay uses the live site', e);
  }
  const { chunks } = await api.progress(-1);
  let events: RecordedEvent[] = [];
  for (const chunk of chunks) {
    // Chunks wholly after the moment shown are not needed, the one holding it and all before it are.
    if (chunk.first_ts > b.client_ts_ms + SNAPSHOT_SLACK_MS + SETTLE_MS && events.length) break;
    events = events.concat(markBlocked(sanitiser.events(await api.chunk(chunk.seq))));
  }
  return events.sort((x, y) => x.timestamp - y.timestamp);
}

/** Events from the pageview's snapshot (and the Meta before it) to the moment shown, and that moment. */
function pageviewEvents(events: RecordedEvent[], clientTsMs: number): { events: RecordedEvent[]; atMs: number } | null {
  let snapshot = -1;
  for (let i = 0; i < events.length; i++) {
    if (events[i].type !== FULL_SNAPSHOT_EVENT) continue;
    if (events[i].timestamp <= clientTsMs + SNAPSHOT_SLACK_MS || snapshot < 0) snapshot = i;
    if (events[i].timestamp > clientTsMs + SNAPSHOT_SLACK_MS) break;
  }
  if (snapshot < 0) return null;
  let start = snapshot;
  while (start > 0 && events[start].type !== META_EVENT && events[start].timestamp - events[start - 1].timestamp < 1000) {
    start--;
  }
  const base = events[snapshot].timestamp;
  let atMs = Math.max(base, clientTsMs) + SETTLE_MS;
  // Not past the next page load: that would show another page.
  const next = events.find((e, i) => i > snapshot && (e.type === FULL_SNAPSHOT_EVENT || e.type === META_EVENT));
  if (next) atMs = Math.min(atMs, next.timestamp - 1);
  return { events: events.slice(start).filter((e) => e.timestamp <= atMs), atMs };
}

class HeatmapPage {
  private viewport: HTMLElement;
  private note: HTMLElement | null;
  private stage = document.createElement('div');
  private overlay = document.createElement('div');
  private doc: Document | null = null;
  private widthPx = 0;
  private heightPx = 0;

  constructor(private island: Island) {
    this.viewport = document.getElementById('hm-hm-viewport') as HTMLElement;
    this.note = document.getElementById('hm-hm-note');
    this.stage.className = 'hm-hm-page';
    this.overlay.className = 'hm-hm-overlay';
  }

  async start(): Promise<void> {
    const { heatmap } = this.island;
    const b = heatmap.backdrops[0];
    const at = Number(this.island.at);
    this.widthPx = at >= MIN_WIDTH_PX && at <= MAX_WIDTH_PX ? Math.round(at) : b && b.in_bucket ? b.viewport_w : BUCKET_WIDTH_PX[heatmap.width] || 1280;
    let replayed = false;
    if (b && this.island.can_replay) {
      try {
        replayed = await this.replay(b);
      } catch (e) {
        console.warn('heatmap: the recording could not be replayed', e);
      }
    }
    if (!replayed) this.blank(b ? (this.island.can_replay ? 'The recording could not be replayed' :
      'This project does not let viewers watch replays') + ': the clicks are drawn on a blank page.' : '');
    this.stage.appendChild(this.overlay);
    this.fit();
    if (heatmap.kind === 'scroll') this.drawScroll();
    else this.drawClicks(replayed);
    this.viewport.classList.remove('is-loading');
    this.viewport.dataset.drawn = '1';
    state.ready = true;
    window.addEventListener('resize', () => this.fit());
  }

  private async replay(b: Backdrop): Promise<boolean> {
    const found = pageviewEvents(await recordingUntil(this.island, b), b.client_ts_ms);
    if (!found || found.events.length < 2) return false;
    this.viewport.appendChild(this.stage);
    const replayer = new Replayer(found.events as ConstructorParameters<typeof Replayer>[0], {
      root: this.stage,
      skipInactive: false,
      showWarning: false,
      mouseTail: false,
      triggerFocus: false,
      // Never UNSAFE_replayCanvas: it would add allow-scripts to the iframe's sandbox.
      UNSAFE_replayCanvas: false,
      insertStyleRules: BLOCKED_STYLE_RULES,
    });
    const iframe = replayer.iframe;
    if (iframe.getAttribute('sandbox') !== 'allow-same-origin') {
      replayer.destroy();
      throw new Error('refusing to replay: the replay iframe is not sandboxed as expected');
    }
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    replayer.on('fullsnapshot-rebuilded', () => pinNoReferrer(iframe.contentDocument));
    replayer.pause(found.atMs - found.events[0].timestamp);
    pinNoReferrer(iframe.contentDocument);
    const doc = iframe.contentDocument;
    if (!doc || !doc.documentElement) return false;
    this.doc = doc;
    // Lay the page out at the chosen width, then make the frame as tall as the document: the whole page shows.
    // The replayer sizes its frame to the recorded viewport (also later, on its own schedule): ours wins.
    const size = (): void => {
      iframe.setAttribute('width', String(this.widthPx));
      iframe.setAttribute('height', String(b.viewport_h || 800));
      this.heightPx = 0;
      for (let i = 0; i < 3; i++) {
        const height = Math.min(MAX_PAGE_HEIGHT_PX, Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0));
        if (height === this.heightPx) break;
        this.heightPx = height;
        iframe.setAttribute('height', String(height));
      }
    };
    size();
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    replayer.on('resize', () => size());
    size();
    state.backdrop = 'replay';
    if (this.note) this.note.hidden = true;
    return true;
  }

  private blank(message: string): void {
    this.viewport.textContent = '';
    this.viewport.appendChild(this.stage);
    this.stage.classList.add('is-blank');
    this.heightPx = BLANK_PAGE_HEIGHT_PX;
    state.backdrop = 'blank';
    if (this.note && message) this.note.textContent = message;
  }

  /** Scale the page down to the column's width (never up). */
  private fit(): void {
    const spinner = this.viewport.querySelector('.hm-hm-spinner');
    if (spinner) spinner.remove();
    const available = Math.max(200, this.viewport.clientWidth);
    const scale = Math.min(1, available / this.widthPx);
    Object.assign(this.stage.style, {
      width: `${this.widthPx}px`, height: `${this.heightPx}px`, transform: `scale(${scale})`,
    });
    Object.assign(this.overlay.style, { width: `${this.widthPx}px`, height: `${this.heightPx}px` });
    this.viewport.style.height = `${Math.ceil(this.heightPx * scale)}px`;
    Object.assign(state, { widthPx: this.widthPx, heightPx: this.heightPx, scale });
    this.overlay.style.setProperty('--hm-dot-scale', String(1 / scale));
  }

  /** The element's box in the replayed document (px), or null when the path finds nothing shown. */
  private box(selector: string): DOMRect | null {
    if (!this.doc || !selector) return null;
    let el: globalThis.Element | null = null;
    try {
      el = this.doc.querySelector(selector);
    } catch (e) {
      return null; // a path this browser does not parse
    }
    const rect = el && el.getBoundingClientRect();
    return rect && rect.width > 0 && rect.height > 0 ? rect : null;
  }

  private drawClicks(replayed: boolean): void {
    const { elements, positions } = this.island.heatmap;
    const cells: { x: number; y: number; n: number; selector: string; how: 'element' | 'position' }[] = [];
    if (replayed) {
      const scrollX = this.doc?.defaultView?.scrollX || 0;
      const scrollY = this.doc?.defaultView?.scrollY || 0;
      for (const e of elements) {
        const box = this.box(e.selector);
        for (const [fx, fy, n, xf, yf] of e.offsets) {
          if (box) cells.push({ x: box.left + scrollX + fx * box.width, y: box.top + scrollY + fy * box.height, n, selector: e.selector, how: 'element' });
          else cells.push({ x: xf * this.widthPx, y: yf * this.heightPx, n, selector: e.selector, how: 'position' });
        }
      }
    } else {
      for (const [xf, yf, n] of positions) cells.push({ x: xf * this.widthPx, y: yf * this.heightPx, n, selector: '', how: 'position' });
    }
    const most = cells.reduce((m, c) => Math.max(m, c.n), 1);
    const fragment = document.createDocumentFragment();
    for (const c of cells.sort((a, b) => a.n - b.n)) {
      const t = c.n / most;
      const dot = document.createElement('div');
      dot.className = 'hm-hm-dot';
      dot.dataset.selector = c.selector;
      dot.dataset.placed = c.how;
      dot.dataset.clicks = String(c.n);
      dot.title = `${c.n} click${c.n === 1 ? '' : 's'}${c.selector ? ' on ' + c.selector : ''}`;
      const size = DOT_PX * (0.6 + 0.6 * Math.sqrt(t));
      Object.assign(dot.style, {
        left: `${c.x}px`, top: `${c.y}px`, width: `${size}px`, height: `${size}px`,
        background: `radial-gradient(circle, ${heat(t, 0.9)} 0, ${heat(t, 0.55)} 45%, ${heat(t, 0)} 72%)`,
      });
      fragment.appendChild(dot);
      state.placed[c.how]++;
    }
    this.overlay.appendChild(fragment);
    state.dots = cells.length;
    this.linkRows();
  }

  /** A row of the element list outlines its element on the page. */
  private linkRows(): void {
    const outline = document.createElement('div');
    outline.className = 'hm-hm-outline';
    outline.hidden = true;
    this.overlay.appendChild(outline);
    document.querySelectorAll<HTMLElement>('.hm-hm-elements tr[data-selector]').forEach((row) => {
      const show = (): void => {
        const box = this.box(row.dataset.selector || '');
        outline.hidden = !box;
        if (box) Object.assign(outline.style, { left: `${box.left}px`, top: `${box.top}px`, width: `${box.width}px`, height: `${box.height}px` });
      };
      row.addEventListener('mouseenter', show);
      row.addEventListener('focus', show);
      row.addEventListener('mouseleave', () => (outline.hidden = true));
    });
  }

  private drawScroll(): void {
    const { reached } = this.island.heatmap.scroll;
    for (let i = 0; i < reached.length - 1; i++) {
      const here = reached[i];
      const band = document.createElement('div');
      band.className = 'hm-hm-band';
      band.dataset.depth = String(here.depth);
      const top = (here.depth / 100) * this.heightPx;
      const bottom = (reached[i + 1].depth / 100) * this.heightPx;
      Object.assign(band.style, { top: `${top}px`, height: `${bottom - top}px`, background: heat(here.percent / 100, 0.35) });
      if (here.depth % 10 === 0) {
        const label = document.createElement('span');
        label.className = 'hm-hm-band-label';
        label.textContent = `${here.percent} % reached ${here.depth} %`;
        band.appendChild(label);
      }
      this.overlay.appendChild(band);
      state.bands++;
    }
  }
}

function main(): void {
  postFormsWithOrigin(document);
  const island = readIsland();
  if (!island) return; // no page chosen yet, or a 400 page
  new HeatmapPage(island).start().catch((e: unknown) => {
    state.error = String(e);
    console.error('heatmap failed', e);
  });
}

main();
