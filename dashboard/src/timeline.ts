/**
 * The session's analytics events around the player: the side list (click to
 * seek, current one highlighted), the coloured markers on the progress bar,
 * and which URL the visitor was on at a given time; the session's frustration
 * signals (computed when it was loaded: GET …/sessions/{sid}/frustration) as
 * markers of their own and as badges on the events that raised them.
 *
 * Everything recorded is shown with textContent, never as HTML.
 */
import type { SessionEvent } from './chunks';
import { formatClock, formatInZone, shortUrl } from './format';

/** Types that get a marker on the progress bar. */
const MARKED = new Set(['pageview', 'click', 'error', 'custom', 'submit']);
/** 16×16 stroke icons per event type (drawn, not emoji: emoji fonts are often missing). */
const ICONS: Record<string, string> = {
  pageview: 'M4 1.5h5.5l3 3v10H4zM9.5 1.5v3h3',
  click: 'M3 2l9 4.5-4 1.2L6.5 12z',
  submit: 'M3 8.5l3 3 7-7',
  scroll: 'M8 2v12M5 5l3-3 3 3M5 11l3 3 3-3',
  error: 'M8 1.5l6.5 12h-13zM8 6v3.5M8 11.5v.01',
  pageleave: 'M6 2.5H3v11h3M10 5l3 3-3 3M13 8H6',
  custom: 'M8 1.8l1.9 3.9 4.3.6-3.1 3 .7 4.3L8 11.6l-3.8 2 .7-4.3-3.1-3 4.3-.6z',
  identify: 'M8 8a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM2.5 14.5c.5-3 2.7-4.5 5.5-4.5s5 1.5 5.5 4.5',
};
const OTHER_ICON = 'M8 5a3 3 0 1 0 0 6 3 3 0 0 0 0-6z';
const SNAPSHOT_SETTLE_MS = 20;
/** What the replay calls each frustration signal, and its marker's colour (set from script: the CSP allows it). */
const SIGNALS: Record<string, { label: string; colour: string }> = {
  rage: { label: 'Rage click', colour: '#dc2626' },
  dead: { label: 'Dead click', colour: '#ea580c' },
  error: { label: 'Error click', colour: '#a21caf' },
  quick_back: { label: 'Quick back', colour: '#2563eb' },
  excessive_scroll: { label: 'Excessive scrolling', colour: '#ca8a04' },
  thrashed_cursor: { label: 'Thrashed cursor', colour: '#0d9488' },
};

/** One signal as the API sends it: server time, the page, and the event that raised it (when one did). */
export interface FrustrationMark {
  ts: number;
  kind: string;
  path: string;
  event_id: string;
}
const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * When the event happened on the recording's clock. Analytics times (`ts`) are
 * corrected for the visitor's clock skew at capture, rrweb's are not: place
 * events by the client's own clock so markers line up with the replay.
 */
export function recordedTime(e: SessionEvent): number {
  return e.client_ts ?? e.ts;
}

interface Entry {
  event: SessionEvent;
  offset: number; // ms since the recording's first event
  item: HTMLLIElement;
  marker: HTMLSpanElement | null;
}

export function describe(e: SessionEvent): { main: string; sub: string } {
  const props = parseProps(e.props);
  switch (e.type) {
    case 'pageview':
      return { main: shortUrl(e.url) || e.url, sub: e.title || '' };
    case 'click':
      return { main: e.text ? `Click “${e.text}”` : `Click ${e.tag || 'element'}`, sub: e.selector || '' };
    case 'submit':
      return { main: 'Form submitted', sub: e.selector || '' };
    case 'scroll':
      return { main: typeof props.depth === 'number' ? `Scrolled to ${props.depth}%` : 'Scrolled', sub: shortUrl(e.url) };
    case 'error':
      return { main: String(props.message || 'JavaScript error'), sub: String(props.source || shortUrl(e.url)) };
    case 'pageleave':
      return { main: 'Left page', sub: shortUrl(e.url) };
    case 'identify':
      return { main: `Identified as ${e.user_id || '?'}`, sub: '' };
    case 'custom':
      return { main: e.name || 'Custom event', sub: compactProps(props) };
    default:
      return { main: e.name || e.type, sub: shortUrl(e.url) };
  }
}

function parseProps(raw: string): Record<string, unknown> {
  if (!raw) return {};
  try {
    const value: unknown = JSON.parse(raw);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch (e) {
    return {};
  }
}

function compactProps(props: Record<string, unknown>): string {
  const text = Object.keys(props)
    .slice(0, 4)
    .map((k) => `${k}: ${typeof props[k] === 'object' ? JSON.stringify(props[k]) : String(props[k])}`)
    .join(', ');
  return text.length > 160 ? text.slice(0, 159) + '…' : text;
}

interface RecordedMarker {
  offset: number;
  kind: string;
  title: string;
  marker: HTMLSpanElement | null;
}

export class Timeline {
  private entries: Entry[] = [];
  private urls: { offset: number; url: string }[] = [];
  private snapshots: { offset: number; url: string }[] = [];
  private markerTrack: HTMLDivElement | null = null;
  /** Markers for what the recording itself holds (console errors, failed requests: devpanes.ts). */
  private recordedMarkers: RecordedMarker[] = [];
  private current: Entry | null = null;
  private filter = '';
  private startTime = 0;
  private totalMs = 0;
  private frustration: { mark: FrustrationMark; marker: HTMLSpanElement | null }[] = [];

  constructor(
    private list: HTMLOListElement,
    private onSeek: (offsetMs: number) => void,
    /** The project's time zone: an event's title gives its time of day there, zone named. */
    private timeZone?: string,
  ) {}

  /** Fill the list; offsets are relative to the recording's first event (startTime). */
  setEvents(events: SessionEvent[], startTime: number): void {
    this.startTime = startTime;
    this.list.textContent = '';
    this.entries = [];
    this.current = null;
    const sorted = events.slice().sort((a, b) => recordedTime(a) - recordedTime(b));
    for (const event of sorted) {
      const offset = Math.max(0, recordedTime(event) - startTime);
      const entry: Entry = { event, offset, item: this.item(event, offset), marker: null };
      entry.item.querySelector('button')!.addEventListener('click', () => this.onSeek(this.seekTarget(entry)));
      this.list.appendChild(entry.item);
      this.entries.push(entry);
      if (event.type === 'pageview' && event.url) this.addUrl(offset, event.url);
    }
    if (!sorted.length) {
      const empty = document.createElement('li');
      empty.className = 'hm-events-note';
      empty.textContent = 'No analytics events in this session.';
      this.list.appendChild(empty);
    }
    this.applyFilter(this.filter);
    this.badgeEvents();
    this.renderMarkers();
  }

  /** A URL the recording itself reports (rrweb Meta events) at an offset. */
  addUrl(offset: number, url: string): void {
    this.urls.push({ offset, url });
    this.urls.sort((a, b) => a.offset - b.offset);
  }

  /** A full snapshot in the recording (a page load), with the URL its Meta event announced. */
  addSnapshot(offset: number, url: string): void {
    this.snapshots.push({ offset, url });
  }

  /**
   * Where clicking an event seeks to: its own time, except that a page load's
   * pageview goes to that page's full snapshot, which the recorder takes a
   * moment after the tracker sends the pageview (before it, the old page shows).
   */
  seekTarget(entry: Entry): number {
    if (entry.event.type !== 'pageview') return entry.offset;
    const wanted = stripHash(entry.event.url);
    for (const snap of this.snapshots) {
      if (snap.offset >= entry.offset - 500 && snap.offset <= entry.offset + 5000 && stripHash(snap.url) === wanted) {
        // The player applies events strictly before the seek time: land just after the snapshot.
        return Math.max(snap.offset + SNAPSHOT_SETTLE_MS, entry.offset);
      }
    }
    return entry.offset;
  }

  urlAt(offsetMs: number): string {
    let url = '';
    for (const u of this.urls) {
      if (u.offset > offsetMs + 50) break;
      url = u.url;
    }
    return url || (this.urls.length ? this.urls[0].url : '');
  }

  applyFilter(type: string): void {
    this.filter = type;
    for (const entry of this.entries) entry.item.hidden = !!type && entry.event.type !== type;
  }

  /** A marker at an offset for something in the recording; `kind` names its colour (hm-marker-<kind>). */
  addMarker(offset: number, kind: string, title: string): void {
    const m: RecordedMarker = { offset, kind: /^[a-z-]+$/.test(kind) ? kind : 'other', title, marker: null };
    this.recordedMarkers.push(m);
    if (this.markerTrack) this.renderRecordedMarker(m, this.markerTrack); // just this one: there may be thousands
  }

  private renderRecordedMarker(m: RecordedMarker, track: HTMLDivElement): void {
    if (!m.marker) {
      m.marker = document.createElement('span');
      m.marker.className = `hm-marker hm-marker-${m.kind}`;
      m.marker.title = m.title;
      track.appendChild(m.marker);
    }
    this.place(m.marker, m.offset);
  }

  /** Put the markers into the player's progress bar (again, when the loaded duration changes). */
  attachMarkers(progressBar: HTMLElement, totalMs: number): void {
    this.totalMs = totalMs;
    if (!this.markerTrack || this.markerTrack.parentElement !== progressBar) {
      this.markerTrack = document.createElement('div');
      this.markerTrack.className = 'hm-markers';
      progressBar.appendChild(this.markerTrack);
    }
    this.renderMarkers();
  }

  /** Fetch the session's frustration signals and mark them; a failure leaves the replay as it is. */
  loadFrustration(projectId: string, sessionId: string): Promise<void> {
    const path =
      `/api/v1/projects/${encodeURIComponent(projectId)}/sessions/${encodeURIComponent(sessionId)}/frustration`;
    return fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((r) => (r.ok ? r.json() : { marks: [] }))
      .then((body: { marks?: FrustrationMark[] }) => this.setFrustration(Array.isArray(body.marks) ? body.marks : []))
      .catch(() => undefined);
  }

  setFrustration(marks: FrustrationMark[]): void {
    for (const f of this.frustration) f.marker?.remove();
    this.frustration = marks.filter((m) => SIGNALS[m.kind]).map((mark) => ({ mark, marker: null }));
    this.list.dataset.frustration = String(this.frustration.length);
    this.badgeEvents();
    this.renderMarkers();
  }

  /**
   * Where a signal sits on the recording's clock: on the event that raised it when the list has it (a click, a
   * quick back's pageview), else its server time moved by the visitor's clock skew the events show.
   */
  private frustrationOffset(mark: FrustrationMark): number {
    const own = this.entries.find((e) =>
      mark.event_id ? e.event.event_id === mark.event_id : e.event.type === 'pageview' && e.event.ts === mark.ts,
    );
    if (own) return own.offset;
    const skews = this.entries.map((e) => recordedTime(e.event) - e.event.ts).sort((a, b) => a - b);
    const skew = skews.length ? skews[skews.length >> 1] : 0;
    return Math.max(0, mark.ts + skew - this.startTime);
  }

  private badgeEvents(): void {
    for (const entry of this.entries) {
      entry.item.querySelectorAll('.hm-ev-signal').forEach((b) => b.remove());
      entry.item.classList.remove('hm-ev-frustrated');
    }
    for (const { mark } of this.frustration) {
      const entry = this.entries.find((e) =>
        mark.event_id ? e.event.event_id === mark.event_id : e.event.type === 'pageview' && e.event.ts === mark.ts,
      );
      if (!entry) continue;
      entry.item.classList.add('hm-ev-frustrated');
      const badge = span('hm-ev-signal', SIGNALS[mark.kind].label);
      badge.dataset.signal = mark.kind;
      badge.style.color = SIGNALS[mark.kind].colour;
      badge.style.fontWeight = '600';
      badge.style.fontSize = '0.72rem';
      badge.style.marginLeft = '6px';
      entry.item.querySelector('.hm-ev-main')?.appendChild(badge);
    }
  }

  private renderFrustration(track: HTMLDivElement): void {
    for (const f of this.frustration) {
      const offset = this.frustrationOffset(f.mark);
      if (!f.marker) {
        const signal = SIGNALS[f.mark.kind];
        f.marker = document.createElement('span');
        f.marker.className = 'hm-marker hm-marker-frustration';
        f.marker.dataset.signal = f.mark.kind;
        f.marker.style.background = signal.colour;
        // Taller than an event's marker: a signal is what a reviewer looks for.
        f.marker.style.height = '14px';
        f.marker.style.top = '-4px';
        f.marker.style.zIndex = '2';
        f.marker.title = `${formatClock(offset)} · ${signal.label} on ${f.mark.path}`;
        f.marker.setAttribute('aria-label', f.marker.title);
        const mark = f.mark;
        f.marker.addEventListener('click', (ev) => {
          ev.stopPropagation();
          this.onSeek(this.frustrationOffset(mark));
        });
        track.appendChild(f.marker);
      }
      this.place(f.marker, offset);
    }
  }

  private renderMarkers(): void {
    const track = this.markerTrack;
    if (!track) return;
    for (const m of this.recordedMarkers) this.renderRecordedMarker(m, track);
    this.renderFrustration(track);
    for (const entry of this.entries) {
      if (!MARKED.has(entry.event.type)) continue;
      if (!entry.marker) {
        const marker = document.createElement('span');
        marker.className = `hm-marker hm-marker-${entry.event.type}`;
        const { main } = describe(entry.event);
        marker.title = `${formatClock(entry.offset)} · ${entry.event.type}: ${main}`;
        track.appendChild(marker);
        entry.marker = marker;
      }
      this.place(entry.marker, entry.offset);
    }
  }

  private place(marker: HTMLSpanElement, offset: number): void {
    const inRange = this.totalMs > 0 && offset <= this.totalMs;
    marker.hidden = !inRange;
    if (inRange) marker.style.left = `${(100 * offset) / this.totalMs}%`;
  }

  /** Highlight the last event at or before the playback time, keeping it in view in the list. */
  highlight(offsetMs: number): void {
    let found: Entry | null = null;
    for (const entry of this.entries) {
      if (entry.offset > offsetMs + 50) break;
      if (!entry.item.hidden) found = entry;
    }
    if (found === this.current) return;
    if (this.current) this.current.item.classList.remove('hm-current');
    this.current = found;
    if (!found) return;
    found.item.classList.add('hm-current');
    const list = this.list;
    const top = found.item.offsetTop - list.offsetTop;
    if (top < list.scrollTop || top + found.item.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  get startMs(): number {
    return this.startTime;
  }

  private item(event: SessionEvent, offset: number): HTMLLIElement {
    const item = document.createElement('li');
    item.className = `hm-ev hm-ev-${/^[a-z]+$/.test(event.type) ? event.type : 'other'}`;
    item.dataset.offset = String(offset);
    item.dataset.type = event.type;
    const button = document.createElement('button');
    button.type = 'button';
    const { main, sub } = describe(event);
    const icon = span('hm-ev-icon', '');
    icon.setAttribute('aria-hidden', 'true');
    icon.appendChild(svgIcon(ICONS[event.type] || OTHER_ICON));
    const body = span('hm-ev-body', '');
    body.appendChild(span('hm-ev-main', main));
    if (sub) body.appendChild(span('hm-ev-sub', sub));
    button.append(icon, span('hm-ev-time', formatClock(offset)), body);
    button.title = `${event.type} at ${formatClock(offset)}, ${formatInZone(event.ts, this.timeZone, true)}: jump there`;
    item.appendChild(button);
    return item;
  }
}

function stripHash(url: string): string {
  const hash = url.indexOf('#');
  return hash >= 0 ? url.slice(0, hash) : url;
}

function svgIcon(path: string): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '1.6');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  const shape = document.createElementNS(SVG_NS, 'path');
  shape.setAttribute('d', path);
  svg.appendChild(shape);
  return svg;
}

function span(className: string, text: string): HTMLSpanElement {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
  return el;
}
