/**
 * The replay page: turns the server-rendered `#replay-root` shell into an
 * rrweb-player with event markers, a clickable event list, the current URL
 * and shareable `?t=SECONDS` links.
 *
 * Progressive loading: chunks are fetched in seq order; the player is created
 * once the first two chunks are in and the loaded prefix holds a full snapshot
 * (and, with `?t=`, reaches that time), then the remaining chunks are fetched
 * one by one in the background and appended with `player.addEvent`, which
 * extends the progress bar. If playback reaches the end of what is loaded, it
 * waits and resumes when the next chunk arrives.
 *
 * `?t=SECONDS` opens the replay paused at that time (so a shared link shows
 * the moment it points at); without it the replay starts playing at once.
 *
 * Every recorded event passes through `RecordingSanitiser` first (see
 * sanitise.ts for what the replay does against hostile recordings), which
 * lets the replay load resources only from the dashboard and the project's
 * allowed origins (`data-media-origins`, the same list as the page's CSP).
 * The replay document gets a `no-referrer` policy of its own on top of the
 * page's, so that no request it makes names the dashboard.
 */
import Player from 'rrweb-player';
import 'rrweb-player/dist/style.css';
import './replay.css';
import { ChunkInfo, SessionApi, SessionEvent, parseChunks } from './chunks';
import { formatClock } from './format';
import { AssetMap, assetNotice, fetchAssetMap } from './assets';
import { RecordedEvent, RecordingSanitiser } from './sanitise';
import { Timeline, recordedTime } from './timeline';

const CONTROLLER_HEIGHT_PX = 80; // rrweb-player's controller bar
const META_EVENT = 4;
const FULL_SNAPSHOT_EVENT = 2;
const CUSTOM_EVENT = 5;
const SPEEDS = [1, 2, 4, 8];
// The tracker sends a page's first snapshot at once, so chunk 0 often spans a few milliseconds:
// start with two chunks, or playback would stall on its first frame.
const INITIAL_CHUNKS = 2;

/** What tests (and curious developers) can read from the page. */
export interface HmReplay {
  ready: boolean;
  error: string | null;
  loadedChunks: number;
  totalChunks: number;
  /** Chunks that could not be fetched (the replay goes on without them). */
  failedChunks: number[];
  player: Player | null;
  /** Playback time in ms since the recording's first event. */
  currentTime(): number;
  /** Go to a time (ms since the recording's first event), once it is loaded. */
  seek(offsetMs: number): void;
  /** Origins the replay may load resources from: the dashboard's own and the project's allowed origins. */
  allowedOrigins: string[];
  /** The sanitiser applied to a copy of some events (for tests of the sanitiser itself). */
  sanitiseEvents(events: RecordedEvent[], allowedOrigins?: string[], assets?: Record<string, unknown>): RecordedEvent[];
  lastCopiedLink: string;
  /** The session's captured assets (null until loaded, or if they could not be). */
  assetMap: AssetMap | null;
}

declare global {
  interface Window {
    hmReplay?: HmReplay;
  }
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the replay page`);
  return el as T;
}

/** `?t=` in seconds (fractions allowed) → ms, or null. */
export function seekParam(search: string): number | null {
  const raw = new URLSearchParams(search).get('t');
  if (raw === null || raw.trim() === '') return null;
  const seconds = Number(raw);
  return isFinite(seconds) && seconds >= 0 ? Math.round(seconds * 1000) : null;
}

class ReplayPage {
  private api: SessionApi;
  private chunks: ChunkInfo[];
  private allowedOrigins: string[];
  private sanitiser: RecordingSanitiser;
  private player: Player | null = null;
  private timeline: Timeline;
  private currentMs = 0;
  private pendingSeekMs: number | null = null;
  private stalledAtMs: number | null = null;
  private startTime = 0;
  private lastMetaHref = '';
  private resizeTimer = 0;
  readonly state: HmReplay;

  private playerBox = byId<HTMLDivElement>('hm-player');
  private urlLabel = byId<HTMLSpanElement>('hm-current-url');
  private loading = byId<HTMLSpanElement>('hm-loading');
  private copyButton = byId<HTMLButtonElement>('hm-copy-link');

  constructor(private root: HTMLElement) {
    this.api = new SessionApi(root.dataset.project || '', root.dataset.session || '');
    this.chunks = parseChunks(root.dataset.chunks);
    this.allowedOrigins = [location.origin, ...parseOrigins(root.dataset.mediaOrigins)];
    this.sanitiser = new RecordingSanitiser(this.allowedOrigins);
    this.timeline = new Timeline(byId<HTMLOListElement>('hm-events'), (ms) => this.seek(ms), root.dataset.timeZone);
    const page = this;
    this.state = {
      ready: false,
      error: null,
      loadedChunks: 0,
      totalChunks: this.chunks.length,
      failedChunks: [],
      player: null,
      currentTime: () => page.currentMs,
      seek: (ms: number) => page.seek(ms),
      allowedOrigins: this.allowedOrigins,
      sanitiseEvents: (events, origins, assets) => {
        const sanitiser = new RecordingSanitiser(origins || page.allowedOrigins);
        if (assets) sanitiser.setAssets(assets, location.origin);
        return sanitiser.events(JSON.parse(JSON.stringify(events)));
      },
      lastCopiedLink: '',
      assetMap: null,
    };
    byId<HTMLSelectElement>('hm-event-filter').addEventListener('change', (e) => {
      this.timeline.applyFilter((e.target as HTMLSelectElement).value);
      this.timeline.highlight(this.currentMs);
    });
    this.copyButton.addEventListener('click', () => void this.copyLink());
  }

  async start(): Promise<void> {
    const eventsPromise = this.api.events().catch((e: unknown) => {
      this.showNote(`Could not load the session's events (${String(e)}).`, this.byIdList());
      return [] as SessionEvent[];
    });
    if (!this.chunks.length) {
      this.fail('This session has no recording: recording may be off for the site, or its data has not arrived yet.');
      const events = await eventsPromise;
      this.timeline.setEvents(events, events.length ? recordedTime(events[0]) : 0);
      return;
    }
    const target = seekParam(location.search);
    await this.useCapturedAssets();
    let initial: RecordedEvent[];
    try {
      initial = await this.loadInitial(target);
    } catch (e) {
      this.fail(`Could not load the recording (${String(e)}).`);
      this.timeline.setEvents(await eventsPromise, 0);
      return;
    }
    if (initial.length < 2 || !initial.some((e) => e.type === FULL_SNAPSHOT_EVENT)) {
      this.fail('The recording is too short to replay.');
      this.timeline.setEvents(await eventsPromise, initial.length ? initial[0].timestamp : 0);
      return;
    }
    this.createPlayer(initial, target);
    this.timeline.setEvents(await eventsPromise, this.startTime);
    this.refreshProgress();
    this.state.ready = true;
    window.setInterval(() => this.tick(), 200);
    this.tick();
    await this.loadRest();
  }

  /** Chunks from the first until the events can start a replay (and reach `targetMs`, if any). */
  private async loadInitial(targetMs: number | null): Promise<RecordedEvent[]> {
    let events: RecordedEvent[] = [];
    let first = Infinity;
    while (this.state.loadedChunks < this.chunks.length) {
      const chunk = this.chunks[this.state.loadedChunks];
      const loaded = this.sanitiser.events(await this.api.chunk(chunk.seq));
      events = events.concat(loaded); // not push(...loaded): a huge chunk would overflow the call stack
      for (const e of loaded) first = Math.min(first, e.timestamp);
      this.state.loadedChunks++;
      this.showLoading();
      if (this.state.loadedChunks < INITIAL_CHUNKS) continue;
      if (events.length < 2 || !events.some((e) => e.type === FULL_SNAPSHOT_EVENT)) continue;
      if (targetMs === null || chunk.last_ts - first >= targetMs) break;
    }
    return events.sort((a, b) => a.timestamp - b.timestamp);
  }

  private async loadRest(): Promise<void> {
    while (this.state.loadedChunks < this.chunks.length) {
      const chunk = this.chunks[this.state.loadedChunks];
      let events: RecordedEvent[] = [];
      try {
        events = this.sanitiser.events(await this.api.chunk(chunk.seq));
      } catch (e) {
        // Replay what we have: rrweb skips changes to nodes it never saw.
        this.state.failedChunks.push(chunk.seq);
        console.warn(`recording chunk ${chunk.seq} could not be loaded`, e);
      }
      for (const e of events) {
        this.player!.addEvent(e as Parameters<Player['addEvent']>[0]);
        this.noteUrl(e);
      }
      this.state.loadedChunks++;
      // The player appends added events in microtasks: let them land before reading the new duration.
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.refreshProgress();
      this.resumeIfWaiting();
      this.showLoading();
    }
  }

  private createPlayer(events: RecordedEvent[], targetMs: number | null): void {
    this.playerBox.textContent = '';
    const { width, height } = this.playerSize();
    const player = new Player({
      target: this.playerBox,
      props: {
        events: events as Parameters<Player['addEvent']>[0][],
        width,
        height,
        autoPlay: targetMs === null,
        skipInactive: true,
        speedOption: SPEEDS,
        showController: true,
        mouseTail: true,
        showWarning: false,
        // Never UNSAFE_replayCanvas: it would add allow-scripts to the replay iframe's sandbox.
        UNSAFE_replayCanvas: false,
      },
    });
    this.player = this.state.player = player;
    const replayer = player.getReplayer();
    const iframe = replayer.iframe;
    if (iframe.getAttribute('sandbox') !== 'allow-same-origin') {
      replayer.destroy();
      throw new Error('refusing to replay: the replay iframe is not sandboxed as expected');
    }
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    pinNoReferrer(iframe.contentDocument);
    replayer.on('fullsnapshot-rebuilded', () => pinNoReferrer(iframe.contentDocument));
    const fragment = new FragmentFollower(iframe);
    replayer.on('event-cast', (e) => fragment.cast(e as RecordedEvent));
    replayer.on('fullsnapshot-rebuilded', () => fragment.onRebuild());
    this.startTime = player.getMetaData().startTime;
    for (const e of events) this.noteUrl(e);
    player.addEventListener('ui-update-current-time', (detail) => {
      const payload = (detail as { payload?: unknown }).payload;
      if (typeof payload === 'number') this.currentMs = payload;
    });
    player.addEventListener('finish', () => {
      if (this.state.loadedChunks < this.chunks.length) {
        this.stalledAtMs = this.currentMs;
        this.showLoading();
      }
    });
    if (targetMs !== null) {
      const total = player.getMetaData().totalTime;
      this.currentMs = Math.min(targetMs, total);
      player.goto(this.currentMs, false);
    }
    this.copyButton.disabled = false;
    this.fitSidePanel();
    window.addEventListener('resize', () => this.resize());
  }

  /** Side by side, the event list is as tall as the player (its own scrollbar); stacked, it has its CSS height. */
  private fitSidePanel(): void {
    const side = this.root.querySelector<HTMLElement>('.hm-side');
    const stage = this.root.querySelector<HTMLElement>('.hm-stage');
    if (!side || !stage) return;
    const sideBySide = side.getBoundingClientRect().top === stage.getBoundingClientRect().top;
    side.style.height = sideBySide ? `${Math.round(stage.getBoundingClientRect().height)}px` : '';
  }

  /** URLs from Meta events, and page loads (full snapshots) for seeking to a pageview. */
  private noteUrl(e: RecordedEvent): void {
    const offset = Math.max(0, e.timestamp - this.startTime);
    if (e.type === META_EVENT) {
      const href = (e.data as { href?: unknown } | undefined)?.href;
      if (typeof href === 'string' && href) {
        this.lastMetaHref = href;
        this.timeline.addUrl(offset, href);
      }
    } else if (e.type === FULL_SNAPSHOT_EVENT) {
      this.timeline.addSnapshot(offset, this.lastMetaHref);
    }
  }

  private playerSize(): { width: number; height: number } {
    const width = Math.max(320, this.playerBox.clientWidth);
    const top = this.playerBox.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(320, Math.min(window.innerHeight - top - CONTROLLER_HEIGHT_PX - 16, width * 0.75));
    return { width, height: Math.round(height) };
  }

  private resize(): void {
    window.clearTimeout(this.resizeTimer);
    this.resizeTimer = window.setTimeout(() => {
      if (!this.player) return;
      (this.player as unknown as { $set(props: object): void }).$set(this.playerSize());
      // Svelte applies the new size on its next update: measure after it.
      window.requestAnimationFrame(() => {
        this.player?.triggerResize();
        this.fitSidePanel();
      });
    }, 100);
  }

  private refreshProgress(): void {
    if (!this.player) return;
    const bar = this.playerBox.querySelector<HTMLElement>('.rr-progress');
    if (bar) this.timeline.attachMarkers(bar, this.player.getMetaData().totalTime);
  }

  private loadedUntilMs(): number {
    return this.player ? this.player.getMetaData().totalTime : 0;
  }

  seek(offsetMs: number): void {
    if (!this.player) return;
    if (offsetMs > this.loadedUntilMs() && this.state.loadedChunks < this.chunks.length) {
      this.pendingSeekMs = offsetMs;
      this.showLoading();
      return;
    }
    this.pendingSeekMs = null;
    this.stalledAtMs = null;
    this.currentMs = Math.min(offsetMs, this.loadedUntilMs());
    this.player.goto(this.currentMs);
    this.tick();
  }

  private resumeIfWaiting(): void {
    if (!this.player) return;
    const complete = this.state.loadedChunks >= this.chunks.length;
    if (this.pendingSeekMs !== null && (this.pendingSeekMs <= this.loadedUntilMs() || complete)) {
      this.seek(this.pendingSeekMs);
    } else if (this.stalledAtMs !== null) {
      const at = this.stalledAtMs;
      this.stalledAtMs = null;
      if (at < this.loadedUntilMs()) this.player.goto(at, true);
    }
  }

  private tick(): void {
    const url = this.timeline.urlAt(this.currentMs);
    if (this.urlLabel.textContent !== (url || '—')) {
      this.urlLabel.textContent = url || '—';
      this.urlLabel.title = url;
    }
    this.timeline.highlight(this.currentMs);
    this.copyButton.title = `Copy a link to ${formatClock(this.currentMs)}`;
  }

  private showLoading(): void {
    const done = this.state.loadedChunks;
    const total = this.chunks.length;
    if (done >= total && this.pendingSeekMs === null && this.stalledAtMs === null) {
      const failed = this.state.failedChunks.length;
      this.loading.hidden = !failed;
      this.loading.textContent = failed ? `${failed} part(s) of the recording could not be loaded` : '';
      this.root.classList.remove('hm-is-loading');
      return;
    }
    this.loading.hidden = false;
    this.root.classList.add('hm-is-loading');
    const waiting = this.pendingSeekMs !== null || this.stalledAtMs !== null ? 'Buffering… ' : '';
    this.loading.textContent = `${waiting}loading recording ${done}/${total}`;
  }

  private async copyLink(): Promise<void> {
    const link = `${location.origin}${location.pathname}?t=${Math.floor(this.currentMs / 1000)}`;
    this.state.lastCopiedLink = link;
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch (e) {
      copied = false; // no clipboard permission (or an insecure origin): show the link to copy by hand
    }
    this.copyButton.textContent = copied ? 'Link copied' : 'Copy failed: link below';
    if (!copied) this.showLinkField(link);
    window.setTimeout(() => (this.copyButton.textContent = 'Copy link at current time'), 2000);
  }

  private showLinkField(link: string): void {
    let field = this.root.querySelector<HTMLInputElement>('.hm-link-field');
    if (!field) {
      field = document.createElement('input');
      field.className = 'hm-link-field';
      field.readOnly = true;
      this.copyButton.insertAdjacentElement('afterend', field);
    }
    field.value = link;
    field.select();
  }

  private fail(message: string): void {
    this.state.error = message;
    this.loading.hidden = true;
    this.showNote(message, this.playerBox);
  }

  private byIdList(): HTMLElement {
    return byId('hm-events');
  }

  /** Replay the site's stylesheets, images and fonts from the dashboard's copies, and say which are missing. */
  private async useCapturedAssets(): Promise<void> {
    try {
      const map = await fetchAssetMap(this.root.dataset.project || '', this.root.dataset.session || '');
      this.sanitiser.setAssets(map.assets, location.origin);
      this.state.assetMap = map;
      const notice = assetNotice(map.failed.length);
      if (!notice) return;
      const note = document.createElement('p');
      note.className = 'hm-asset-note';
      note.setAttribute('role', 'status');
      note.textContent = notice;
      note.title = map.failed.slice(0, 20).map((f) => `${f.url}: ${f.reason}`).join('\n');
      Object.assign(note.style, { margin: '0', padding: '4px 12px', fontSize: '0.8rem', color: '#fbbf24' });
      this.playerBox.insertAdjacentElement('beforebegin', note);
    } catch (e) {
      console.warn('the captured assets could not be listed; the replay uses the live site', e);
    }
  }

  private showNote(message: string, where: HTMLElement): void {
    where.textContent = '';
    const note = document.createElement(where.tagName === 'OL' ? 'li' : 'p');
    note.className = where.tagName === 'OL' ? 'hm-events-note' : 'hm-player-note';
    note.textContent = message;
    where.appendChild(note);
  }
}

function parseOrigins(raw: string | undefined): string[] {
  try {
    const parsed: unknown = JSON.parse(raw || '[]');
    return Array.isArray(parsed) ? parsed.filter((o): o is string => typeof o === 'string') : [];
  } catch (e) {
    return [];
  }
}

/**
 * Gives the replay document the recorded URL's fragment, so that `:target` rules match as they did: Meta
 * events carry the URL, and so do the tracker's `hm-url` custom events (sent at each fragment change); a
 * rebuild (document.open) resets the document's URL. The change is a fragment navigation within the rebuilt
 * document (it loads and runs nothing) that replaces the history entry; the scroll it causes is undone, the
 * recording's scroll rules.
 */
class FragmentFollower {
  private fragment = '';
  private rebuilt = false; // never before the first rebuild: the initial about:blank would be replaced

  constructor(private iframe: HTMLIFrameElement) {}

  cast(e: RecordedEvent): void {
    const data = (e.data || {}) as { href?: unknown; tag?: unknown; payload?: { href?: unknown } };
    const custom = e.type === CUSTOM_EVENT && data.tag === 'hm-url';
    const href = e.type === META_EVENT ? data.href : custom && data.payload && data.payload.href;
    if (typeof href !== 'string') return;
    try {
      this.fragment = new URL(href).hash;
    } catch (err) {
      this.fragment = '';
    }
    if (this.rebuilt) this.apply();
  }

  onRebuild(): void {
    this.rebuilt = true;
    this.apply();
  }

  private apply(): void {
    const win = this.iframe.contentWindow;
    if (!win || win.location.hash === this.fragment || (!this.fragment && !win.location.hash)) return;
    const { scrollX, scrollY } = win;
    win.location.replace(this.fragment || '#');
    win.scrollTo(scrollX, scrollY);
  }
}

/**
 * Gives the replay document a `no-referrer` policy of its own. It inherits the page's already;
 * this holds even if rrweb's rebuild (document.open) or a future rrweb changed that. A later
 * recorded `<meta name=referrer>` would win, which is why the sanitiser makes those inert.
 */
function pinNoReferrer(doc: Document | null): void {
  const parent = doc && (doc.head || doc.documentElement);
  if (!doc || !parent) return;
  const meta = doc.createElement('meta');
  meta.name = 'referrer';
  meta.content = 'no-referrer';
  parent.insertBefore(meta, parent.firstChild);
}

/**
 * The replay page is served with `Referrer-Policy: no-referrer`, and under that policy browsers
 * send `Origin: null` with form posts, which the dashboard's CSRF check refuses. So the page's own
 * post forms (sign out) are sent with fetch and a same-origin referrer policy, which sends the
 * real Origin, and the browser then goes where the answer went.
 */
function postFormsWithOrigin(doc: Document): void {
  doc.addEventListener('submit', (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== 'post') return;
    e.preventDefault();
    const body = new URLSearchParams();
    new FormData(form).forEach((value, name) => body.append(name, String(value)));
    fetch(form.action, { method: 'POST', body, credentials: 'same-origin', referrerPolicy: 'same-origin' })
      .then((answer) => location.assign(answer.redirected ? answer.url : location.href))
      .catch(() => location.reload());
  });
}

function main(): void {
  postFormsWithOrigin(document);
  const root = document.getElementById('replay-root');
  if (!root) return;
  const page = new ReplayPage(root);
  window.hmReplay = page.state;
  page.start().catch((e: unknown) => {
    page.state.error = String(e);
    console.error('replay failed', e);
  });
}

main();
