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
 *
 * Watching: the player's length is the session's (from its first to its last
 * event, analytics or recorded), not only the recorded chunks' span: empty
 * `hm-pad` custom events mark the session's start and end on the recording's
 * clock. Keyboard shortcuts are in shortcuts.ts, the placeholder of blocked
 * elements in blocked.ts, and following a session still in progress in
 * follow.ts (the page says whether it is live: `data-live`).
 */
import Player from 'rrweb-player';
import 'rrweb-player/dist/style.css';
import './replay.css';
import { ChunkInfo, RecordingProgress, SessionApi, SessionEvent, parseChunks } from './chunks';
import { formatClock } from './format';
import { AssetMap, assetNotice, fetchAssetMap } from './assets';
import { RecordedEvent, RecordingSanitiser } from './sanitise';
import { Timeline, recordedTime } from './timeline';
import { DevPanes } from './devpanes';
import { Shortcuts } from './shortcuts';
import { BLOCKED_STYLE_RULES, markBlocked } from './blocked';
import { LiveFollower, PAD_TAG, padEvent } from './follow';
import { pinNoReferrer, postFormsWithOrigin } from './replaydoc';

const CONTROLLER_HEIGHT_PX = 80; // rrweb-player's controller bar
const META_EVENT = 4;
const FULL_SNAPSHOT_EVENT = 2;
const CUSTOM_EVENT = 5;
const SPEEDS = [1, 2, 4, 8];
// The tracker sends a page's first snapshot at once, so chunk 0 often spans a few milliseconds:
// start with two chunks, or playback would stall on its first frame.
const INITIAL_CHUNKS = 2;
const URL_EVENT_TAG = 'hm-url';
/** A recorded URL longer than this is shown cut (it is still only text). */
const MAX_SHOWN_URL_CHARS = 2048;
// How often the event list of a live session is read again.
const LIVE_EVENTS_REFRESH_MS = 5000;

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
  /** The session is still being recorded and the replay follows it. */
  live: boolean;
  /** While live: how far behind the visitor the player plays, and whether it is there now. */
  liveDelayMs(): number;
  atLive(): boolean;
  /** The session's start and end on the recording's clock (the player's offset 0 and its length). */
  sessionStartMs: number;
  sessionEndMs: number;
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
  private devPanes: DevPanes; // console and network panes (devpanes.ts)
  private currentMs = 0;
  private pendingSeekMs: number | null = null;
  private stalledAtMs: number | null = null;
  private startTime = 0;
  private lastMetaHref = '';
  private resizeTimer = 0;
  /** Server clock minus the visitor's (rrweb's) clock, from the session's events. */
  private skewMs = 0;
  private follower: LiveFollower | null = null;
  private eventsRefreshedAt = 0;
  private shortcuts: Shortcuts;
  /** The first chunks, asked for at once: they load while the assets and events are read. */
  private prefetched = new Map<number, Promise<RecordedEvent[]>>();
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
    void this.timeline.loadFrustration(root.dataset.project || '', root.dataset.session || ''); // signal markers
    this.devPanes = new DevPanes(root, this.timeline, (ms) => this.seek(ms));
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
      live: root.dataset.live === 'true',
      liveDelayMs: () => (page.follower ? page.follower.delayMs : 0),
      atLive: () => (page.follower ? page.follower.atLive() : false),
      sessionStartMs: 0,
      sessionEndMs: 0,
    };
    byId<HTMLSelectElement>('hm-event-filter').addEventListener('change', (e) => {
      this.timeline.applyFilter((e.target as HTMLSelectElement).value);
      this.timeline.highlight(this.currentMs);
    });
    this.copyButton.addEventListener('click', () => void this.copyLink());
    this.shortcuts = new Shortcuts(
      {
        togglePlay: () => this.player?.toggle(),
        seekBy: (deltaMs) => this.seekBy(deltaMs),
        setSpeedIndex: (index) => this.setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, index))]),
        stepSpeed: (step) => this.stepSpeed(step),
      },
      document.getElementById('hm-keys-button') as HTMLButtonElement | null,
    );
  }

  async start(): Promise<void> {
    const eventsPromise = this.api.events().catch((e: unknown) => {
      this.showNote(`Could not load the session's events (${String(e)}).`, this.byIdList());
      return [] as SessionEvent[];
    });
    if (!this.chunks.length && this.state.live) await this.waitForFirstChunks();
    if (!this.chunks.length) {
      this.fail('This session has no recording: recording may be off for the site, or its data has not arrived yet.');
      const events = await eventsPromise;
      this.timeline.setEvents(events, events.length ? recordedTime(events[0]) : 0);
      return;
    }
    const target = seekParam(location.search);
    for (const chunk of this.chunks.slice(0, INITIAL_CHUNKS)) {
      const raw = this.api.chunk(chunk.seq);
      raw.catch(() => undefined); // read (and its failure handled) in fetchChunk
      this.prefetched.set(chunk.seq, raw);
    }
    await this.useCapturedAssets();
    // The session's analytics events give its start and end on the recording's clock (the player's length).
    const sessionEvents = await eventsPromise;
    this.setSessionBounds(sessionEvents);
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
    this.timeline.setEvents(sessionEvents, this.startTime);
    this.refreshProgress();
    this.state.ready = true;
    window.setInterval(() => this.tick(), 200);
    this.tick();
    await this.loadRest();
    if (this.state.live) this.follow(target === null);
    else this.padToSessionEnd();
  }

  /** The session's start and end on the recording's clock: the server's times, less the visitor's clock skew. */
  private setSessionBounds(events: SessionEvent[]): void {
    let earliest: SessionEvent | null = null;
    for (const e of events) if (typeof e.client_ts === 'number' && (!earliest || e.ts < earliest.ts)) earliest = e;
    this.skewMs = earliest ? earliest.ts - (earliest.client_ts as number) : 0;
    const started = Number(this.root.dataset.started);
    const durationMs = Math.max(0, Number(this.root.dataset.durationMs) || 0);
    if (!isFinite(started) || started <= 0) return;
    this.state.sessionStartMs = started - this.skewMs;
    this.state.sessionEndMs = started + durationMs - this.skewMs;
  }

  /** A live session whose first chunk has not arrived yet: wait for it (the page says so meanwhile). */
  private async waitForFirstChunks(): Promise<void> {
    this.showNote('The visitor is on the site now: waiting for the first part of the recording…', this.playerBox);
    for (let attempt = 0; attempt < 120 && !this.chunks.length; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      try {
        const progress = await this.api.progress(-1);
        this.chunks = progress.chunks;
        this.state.totalChunks = this.chunks.length;
        if (!progress.live) break;
      } catch (e) {
        console.warn('live replay: could not ask for the first chunks', e);
      }
    }
  }

  /** Sanitised events of one chunk, blocked elements marked for their placeholder. */
  private async fetchChunk(seq: number): Promise<RecordedEvent[]> {
    const raw = this.prefetched.get(seq);
    this.prefetched.delete(seq);
    return markBlocked(this.sanitiser.events(await (raw || this.api.chunk(seq))));
  }

  /** A finished session: the player ends at the session's end, even when the recording stops earlier. */
  private padToSessionEnd(): void {
    if (!this.player) return;
    const { endTime } = this.player.getMetaData();
    const end = this.state.sessionEndMs;
    if (end > endTime && end - this.startTime <= this.sessionLengthBoundMs()) {
      this.player.addEvent(padEvent(end) as Parameters<Player['addEvent']>[0]);
      // addEvent lands in a microtask, and the controller reads the new length after it.
      window.setTimeout(() => this.refreshProgress(), 0);
    }
  }

  /** Pads never stretch the player past what the session's own times allow (a wrong skew would). */
  private sessionLengthBoundMs(): number {
    return Math.max(0, this.state.sessionEndMs - this.state.sessionStartMs) + 60_000;
  }

  private follow(jumpNow: boolean): void {
    const page = this;
    const follower = new LiveFollower(
      this.api,
      {
        player: () => page.player,
        startTime: () => page.startTime,
        skewMs: () => page.skewMs,
        lastSeq: () => (page.chunks.length ? page.chunks[page.chunks.length - 1].seq : -1),
        addChunk: (chunk) => page.addLiveChunk(chunk),
        ended: (progress) => page.liveEnded(progress),
        newData: () => void page.refreshLiveEvents(),
      },
      byId<HTMLSpanElement>('hm-live'),
      byId<HTMLButtonElement>('hm-jump-live'),
      Number(this.root.dataset.nowMs),
    );
    this.follower = follower;
    follower.start(jumpNow);
  }

  private async addLiveChunk(chunk: ChunkInfo): Promise<void> {
    this.chunks.push(chunk);
    this.state.totalChunks = this.chunks.length;
    let events: RecordedEvent[] = [];
    try {
      events = await this.fetchChunk(chunk.seq);
    } catch (e) {
      this.state.failedChunks.push(chunk.seq);
      console.warn(`recording chunk ${chunk.seq} could not be loaded`, e);
    }
    for (const e of events) {
      this.player!.addEvent(e as Parameters<Player['addEvent']>[0]);
      this.noteUrl(e);
    }
    this.state.loadedChunks++;
    this.showLoading();
  }

  private async refreshLiveEvents(): Promise<void> {
    if (Date.now() - this.eventsRefreshedAt < LIVE_EVENTS_REFRESH_MS) return;
    this.eventsRefreshedAt = Date.now();
    try {
      this.timeline.setEvents(await this.api.events(), this.startTime);
      this.refreshProgress();
    } catch (e) {
      console.warn('live replay: could not read the session events again', e);
    }
  }

  /** The session stopped being live: the follower's pads past its end go, and the player ends where it did. */
  private liveEnded(progress: RecordingProgress): void {
    this.state.live = false;
    if (progress.started_at !== null && progress.duration_ms !== null) {
      this.state.sessionEndMs = progress.started_at + progress.duration_ms - this.skewMs;
    }
    const player = this.player;
    if (!player) return;
    const context = player.getReplayer().service.state.context;
    const lastReal = context.events.reduce((last, e) => (isPad(e) ? last : Math.max(last, e.timestamp)), 0);
    const keepUntil = Math.max(lastReal, this.state.sessionEndMs);
    for (let i = context.events.length - 1; i >= 0 && isPad(context.events[i]); i--) {
      if (context.events[i].timestamp > keepUntil) context.events.splice(i, 1);
    }
    this.padToSessionEnd();
  }

  private seekBy(deltaMs: number): void {
    if (!this.player) return;
    const now = this.player.getReplayer().getCurrentTime();
    this.seek(Math.max(0, Math.min(now + deltaMs, this.player.getMetaData().totalTime)));
  }

  private setSpeed(speed: number): void {
    this.player?.setSpeed(speed);
  }

  private stepSpeed(step: number): void {
    if (!this.player) return;
    const current = SPEEDS.indexOf(this.player.getReplayer().config.speed);
    const index = Math.max(0, Math.min(SPEEDS.length - 1, (current < 0 ? 0 : current) + step));
    this.setSpeed(SPEEDS[index]);
  }

  /** Chunks from the first until the events can start a replay (and reach `targetMs`, if any). */
  private async loadInitial(targetMs: number | null): Promise<RecordedEvent[]> {
    let events: RecordedEvent[] = [];
    let first = Infinity;
    while (this.state.loadedChunks < this.chunks.length) {
      const chunk = this.chunks[this.state.loadedChunks];
      const loaded = await this.fetchChunk(chunk.seq);
      events = events.concat(loaded); // not push(...loaded): a huge chunk would overflow the call stack
      for (const e of loaded) first = Math.min(first, e.timestamp);
      this.state.loadedChunks++;
      this.showLoading();
      if (this.state.loadedChunks < INITIAL_CHUNKS) continue;
      if (events.length < 2 || !events.some((e) => e.type === FULL_SNAPSHOT_EVENT)) continue;
      const zero = this.state.sessionStartMs > 0 ? Math.min(first, this.state.sessionStartMs) : first;
      if (targetMs === null || chunk.last_ts - zero >= targetMs) break;
    }
    return events.sort((a, b) => a.timestamp - b.timestamp);
  }

  private async loadRest(): Promise<void> {
    while (this.state.loadedChunks < this.chunks.length) {
      const chunk = this.chunks[this.state.loadedChunks];
      let events: RecordedEvent[] = [];
      try {
        events = await this.fetchChunk(chunk.seq);
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
    // The session began before its recording (the page's first event comes before rrweb's first snapshot).
    const sessionStart = this.state.sessionStartMs;
    if (sessionStart > 0 && events[0].timestamp > sessionStart && events[0].timestamp - sessionStart <= this.sessionLengthBoundMs()) {
      events = [padEvent(sessionStart) as RecordedEvent, ...events];
    }
    const live = this.state.live;
    const { width, height } = this.playerSize();
    const player = new Player({
      target: this.playerBox,
      props: {
        events: events as Parameters<Player['addEvent']>[0][],
        width,
        height,
        // A live replay starts at the live point once every chunk so far is in; it never skips ahead of it.
        autoPlay: targetMs === null && !live,
        skipInactive: !live,
        speedOption: SPEEDS,
        showController: true,
        mouseTail: true,
        showWarning: false,
        // Never UNSAFE_replayCanvas: it would add allow-scripts to the replay iframe's sandbox.
        UNSAFE_replayCanvas: false,
        // Inserted through the CSSOM (the replay page's CSP allows it): blocked elements get a visible placeholder.
        insertStyleRules: BLOCKED_STYLE_RULES,
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
    this.shortcuts.listenTo(iframe.contentWindow);
    replayer.on('fullsnapshot-rebuilded', () => this.shortcuts.listenTo(iframe.contentWindow));
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

  /**
   * URLs from Meta events and the tracker's `hm-url` events (a new fragment), and page loads (full
   * snapshots) for seeking to a pageview. A URL is only ever shown as text: whatever a recording
   * says, the label never becomes a link, markup or a navigation.
   */
  private noteUrl(e: RecordedEvent): void {
    const offset = Math.max(0, e.timestamp - this.startTime);
    this.devPanes.add(e, offset);
    if (e.type === META_EVENT) {
      const href = (e.data as { href?: unknown } | undefined)?.href;
      if (typeof href === 'string' && href) {
        this.lastMetaHref = href;
        this.timeline.addUrl(offset, href.slice(0, MAX_SHOWN_URL_CHARS));
      }
    } else if (e.type === CUSTOM_EVENT) {
      const data = e.data as { tag?: unknown; payload?: { href?: unknown } } | undefined;
      const href = data && data.tag === URL_EVENT_TAG && data.payload ? data.payload.href : undefined;
      if (typeof href === 'string' && href) this.timeline.addUrl(offset, href.slice(0, MAX_SHOWN_URL_CHARS));
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
    this.devPanes.highlight(this.currentMs);
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

function isPad(e: { type: number; data?: unknown }): boolean {
  return e.type === CUSTOM_EVENT && !!e.data && (e.data as { tag?: unknown }).tag === PAD_TAG;
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
    const custom = e.type === CUSTOM_EVENT && data.tag === URL_EVENT_TAG;
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
