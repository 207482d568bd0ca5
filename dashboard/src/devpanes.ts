/**
 * Developer panes under the replay: Console and Network, filled from the recording's `hm-console` and
 * `hm-network` custom events (the tracker's optional chunks, tracker/src/console.ts and network.ts). The
 * entry at the playback time is highlighted, clicking one seeks there, and errors, warnings and failed
 * requests (status >= 400 or no answer) become markers on the timeline.
 *
 * A recording is untrusted input: every field is type-checked and clipped, and shown with textContent,
 * never as HTML. The panes appear only when the recording holds such entries.
 */
import './devpanes.css';
import { formatClock, shortUrl } from './format';
import type { Timeline } from './timeline';

const CUSTOM_EVENT = 5;
const MAX_TEXT_CHARS = 4000;
/** Entries kept per pane: the tracker sends at most a few hundred a minute; a hostile recording may send more. */
const MAX_ENTRIES = 5000;
const LEVELS = ['log', 'info', 'warn', 'error'];
/** How close playback must stay to a clicked entry's time for it to stay highlighted. */
const CHOSEN_NEAR_MS = 250;

type PaneName = 'console' | 'network';

interface Row {
  offset: number;
  item: HTMLLIElement;
}

/** A recorded event, as far as the panes read it. */
export interface PaneEvent {
  type: number;
  timestamp: number;
  data?: unknown;
}

export interface ConsoleEntry {
  level: string;
  message: string;
  stack: string;
  uncaught: boolean;
  dropped: number;
}

export interface NetworkEntry {
  kind: string;
  method: string;
  url: string;
  status: number;
  duration_ms: number | null;
  request_bytes: number | null;
  response_bytes: number | null;
  failed: boolean;
}

const text = (v: unknown, max = MAX_TEXT_CHARS): string => (typeof v === 'string' ? v.slice(0, max) : '');
const count = (v: unknown): number | null => (typeof v === 'number' && isFinite(v) && v >= 0 ? v : null);

/** The console entry a payload describes, or null when it is not one. */
export function consoleEntry(payload: unknown): ConsoleEntry | null {
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as Record<string, unknown>;
  const level = LEVELS.indexOf(p.level as string) >= 0 ? (p.level as string) : 'log';
  return { level, message: text(p.message), stack: text(p.stack), uncaught: p.uncaught === true, dropped: count(p.dropped) || 0 };
}

/** The network entry a payload describes, or null when it is not one. */
export function networkEntry(payload: unknown): NetworkEntry | null {
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as Record<string, unknown>;
  return {
    kind: p.kind === 'xhr' ? 'xhr' : 'fetch',
    method: text(p.method, 16).toUpperCase() || 'GET',
    url: text(p.url),
    status: count(p.status) || 0,
    duration_ms: count(p.duration_ms),
    request_bytes: count(p.request_bytes),
    response_bytes: count(p.response_bytes),
    failed: p.failed === true,
  };
}

/** A request that did not succeed: an HTTP error status, or no answer at all. */
export const requestFailed = (e: NetworkEntry): boolean => e.failed || e.status >= 400;

function bytes(n: number | null): string {
  if (n === null) return '';
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(1)} MB`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, content = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = content;
  return node;
}

class Pane {
  readonly rows: Row[] = [];
  readonly list: HTMLOListElement;
  readonly tab: HTMLButtonElement;
  private current: Row | null = null;
  /** The row last clicked: it stays the current one while playback is at its time (others may share it). */
  chosen: Row | null = null;

  constructor(
    readonly name: PaneName,
    private label: string,
  ) {
    this.list = el('ol', `hm-dev-list hm-dev-${name}`);
    this.list.id = `hm-dev-${name}`;
    this.tab = el('button', 'hm-dev-tab');
    this.tab.type = 'button';
    this.tab.dataset.pane = name;
    this.tab.setAttribute('role', 'tab');
    this.tab.setAttribute('aria-controls', this.list.id);
    this.count();
  }

  /** Insert in time order (chunks come in order, so almost always at the end). */
  insert(row: Row): void {
    let i = this.rows.length;
    while (i > 0 && this.rows[i - 1].offset > row.offset) i--;
    this.list.insertBefore(row.item, i < this.rows.length ? this.rows[i].item : null);
    this.rows.splice(i, 0, row);
    this.count();
  }

  count(): void {
    this.tab.textContent = `${this.label} (${this.rows.length})`;
  }

  highlight(offsetMs: number): void {
    let found: Row | null = null;
    if (this.chosen && Math.abs(this.chosen.offset - offsetMs) <= CHOSEN_NEAR_MS) {
      found = this.chosen;
    } else {
      this.chosen = null;
      for (const row of this.rows) {
        if (row.offset > offsetMs + 50) break;
        found = row;
      }
    }
    if (found === this.current) return;
    if (this.current) this.current.item.classList.remove('hm-current');
    this.current = found;
    if (!found) return;
    found.item.classList.add('hm-current');
    if (this.list.hidden) return;
    const top = found.item.offsetTop - this.list.offsetTop;
    if (top < this.list.scrollTop || top + found.item.offsetHeight > this.list.scrollTop + this.list.clientHeight) {
      this.list.scrollTop = Math.max(0, top - this.list.clientHeight / 3);
    }
  }
}

export class DevPanes {
  private section: HTMLElement | null = null;
  private panes: Record<PaneName, Pane> = { console: new Pane('console', 'Console'), network: new Pane('network', 'Network') };
  private shown: PaneName = 'console';
  private lastOffsetMs = 0;

  constructor(
    private parent: HTMLElement,
    private timeline: Timeline,
    private onSeek: (offsetMs: number) => void,
  ) {}

  /** Any recorded event, at its offset from the recording's start: the panes keep their custom events. */
  add(e: PaneEvent, offset: number): void {
    if (e.type !== CUSTOM_EVENT || !e.data || typeof e.data !== 'object') return;
    const { tag, payload } = e.data as { tag?: unknown; payload?: unknown };
    if (tag === 'hm-console') {
      const entry = consoleEntry(payload);
      if (entry) this.addRow('console', offset, this.consoleItem(entry, offset), consoleMarker(entry));
    } else if (tag === 'hm-network') {
      const entry = networkEntry(payload);
      if (entry) this.addRow('network', offset, this.networkItem(entry, offset), networkMarker(entry));
    }
  }

  /** Highlight each pane's last entry at or before the playback time. */
  highlight(offsetMs: number): void {
    this.lastOffsetMs = offsetMs;
    if (!this.section) return;
    this.panes.console.highlight(offsetMs);
    this.panes.network.highlight(offsetMs);
  }

  private addRow(name: PaneName, offset: number, item: HTMLLIElement, marker: [string, string] | null): void {
    const pane = this.panes[name];
    if (pane.rows.length >= MAX_ENTRIES) return;
    this.build();
    item.dataset.offset = String(offset);
    pane.insert({ offset, item });
    if (marker) this.timeline.addMarker(offset, marker[0], `${formatClock(offset)} · ${marker[1]}`);
    if (!this.panes[this.shown].rows.length) this.show(name); // open the pane that has something
  }

  /** The section with its tabs, made with the first entry. */
  private build(): void {
    if (this.section) return;
    const section = el('section', 'hm-devpanes');
    section.setAttribute('aria-label', 'Developer panes');
    const tabs = el('div', 'hm-dev-tabs');
    tabs.setAttribute('role', 'tablist');
    for (const pane of [this.panes.console, this.panes.network]) {
      pane.tab.addEventListener('click', () => this.show(pane.name));
      tabs.appendChild(pane.tab);
    }
    section.appendChild(tabs);
    section.append(this.panes.console.list, this.panes.network.list);
    this.parent.appendChild(section);
    this.section = section;
    this.show(this.shown);
  }

  private show(name: PaneName): void {
    this.shown = name;
    for (const pane of [this.panes.console, this.panes.network]) {
      pane.list.hidden = pane.name !== name;
      pane.tab.setAttribute('aria-selected', String(pane.name === name));
      pane.tab.classList.toggle('hm-dev-tab-on', pane.name === name);
    }
    this.highlight(this.lastOffsetMs);
  }

  private row(className: string, offset: number, parts: HTMLElement[], title: string): HTMLLIElement {
    const item = el('li', `hm-dev ${className}`);
    const button = el('button', 'hm-dev-row');
    button.type = 'button';
    button.title = `${title} at ${formatClock(offset)}: jump there`;
    button.append(el('span', 'hm-dev-time', formatClock(offset)), ...parts);
    button.addEventListener('click', () => {
      const pane = this.panes[this.shown];
      pane.chosen = pane.rows.find((r) => r.item === item) || null;
      this.onSeek(offset);
    });
    item.appendChild(button);
    return item;
  }

  private consoleItem(entry: ConsoleEntry, offset: number): HTMLLIElement {
    const label = entry.uncaught ? 'uncaught' : entry.level;
    const parts = [el('span', 'hm-dev-level', label), el('span', 'hm-dev-message', entry.message || '(empty)')];
    const item = this.row(`hm-dev-${entry.level}`, offset, parts, `console.${entry.level}`);
    if (entry.dropped) item.appendChild(el('p', 'hm-dev-note', `${entry.dropped} earlier message(s) not recorded`));
    if (entry.stack) {
      const details = el('details', 'hm-dev-stack');
      details.append(el('summary', '', 'Stack'), el('pre', '', entry.stack));
      item.appendChild(details);
    }
    return item;
  }

  private networkItem(entry: NetworkEntry, offset: number): HTMLLIElement {
    const status = entry.failed ? 'failed' : entry.status ? String(entry.status) : 'opaque';
    const sizes = [bytes(entry.request_bytes) && `↑ ${bytes(entry.request_bytes)}`, bytes(entry.response_bytes) && `↓ ${bytes(entry.response_bytes)}`];
    const url = el('span', 'hm-dev-url', shortUrl(entry.url) || entry.url);
    url.title = entry.url;
    const parts = [
      el('span', 'hm-dev-method', entry.method),
      el('span', 'hm-dev-status', status),
      url,
      el('span', 'hm-dev-meta', [entry.duration_ms !== null ? `${entry.duration_ms} ms` : '', ...sizes].filter((s) => s).join(' · ')),
    ];
    const failed = requestFailed(entry) ? ' hm-dev-failed' : '';
    return this.row(`hm-dev-request${failed}`, offset, parts, `${entry.kind} ${entry.method} ${status}`);
  }
}

/** Errors and warnings are marked on the timeline: [marker kind, what its title says]. */
function consoleMarker(entry: ConsoleEntry): [string, string] | null {
  if (entry.level !== 'error' && entry.level !== 'warn') return null;
  return [`console-${entry.level}`, `console.${entry.level}: ${entry.message.slice(0, 120)}`];
}

function networkMarker(entry: NetworkEntry): [string, string] | null {
  if (!requestFailed(entry)) return null;
  const status = entry.failed ? 'failed' : String(entry.status);
  return ['network-failed', `${entry.method} ${shortUrl(entry.url).slice(0, 120)} ${status}`];
}
