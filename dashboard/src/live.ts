/**
 * The live page: the project's accepted batches as they arrive, from the
 * server-sent events feed (`data-feed-url`), newest first.
 *
 * The browser's EventSource reconnects by itself and resumes after the last
 * batch it saw (Last-Event-ID); a `gap` event says some were skipped. Times are
 * shown in the project's time zone, zone named. Everything received is shown
 * with textContent, never as HTML.
 */
import { formatInZone, shortUrl } from './format';

const MAX_ITEMS = 200;
const REOPEN_MS = 5000;

interface ShownEvent {
  type: string;
  name: string;
  url: string;
  ts: number;
}

interface BatchSummary {
  id: number;
  session_id: string;
  received_at: number;
  events: number;
  chunks: number;
  shown: ShownEvent[];
  user_id: string;
  country: string;
  browser: string;
  os: string;
  device_type: string;
}

/** What tests (and curious developers) can read from the page. */
export interface HmLive {
  status: string;
  received: number;
  sessions: string[];
}

declare global {
  interface Window {
    hmLive?: HmLive;
  }
}

function el(tag: string, className: string, text = ''): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function describeEvent(e: ShownEvent): string {
  const what = e.type === 'pageview' || !e.name ? shortUrl(e.url) : e.name;
  return what ? `${e.type} ${what}` : e.type;
}

class LivePage {
  readonly state: HmLive = { status: 'connecting', received: 0, sessions: [] };
  private list: HTMLOListElement;
  private empty: HTMLElement | null;
  private status: HTMLElement | null;

  constructor(private root: HTMLElement) {
    this.list = root.querySelector<HTMLOListElement>('#hm-live-list')!;
    this.empty = document.getElementById('hm-live-empty');
    this.status = document.getElementById('hm-live-status');
  }

  open(): void {
    const source = new EventSource(this.root.dataset.feedUrl || '');
    source.onopen = () => this.setStatus('live', 'Live');
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        this.setStatus('closed', 'Disconnected: retrying…');
        window.setTimeout(() => this.open(), REOPEN_MS);
      } else {
        this.setStatus('connecting', 'Reconnecting…');
      }
    };
    source.addEventListener('batch', (e) => this.batch((e as MessageEvent).data));
    source.addEventListener('gap', () => this.note('Some batches are not shown here: too many at once, or the server restarted.'));
  }

  private setStatus(code: string, text: string): void {
    this.state.status = code;
    if (!this.status) return;
    this.status.dataset.state = code;
    const label = this.status.querySelector('.live-status-text');
    if (label) label.textContent = text;
  }

  private batch(data: string): void {
    let summary: BatchSummary;
    try {
      summary = JSON.parse(data) as BatchSummary;
    } catch (e) {
      return;
    }
    this.state.received++;
    this.state.sessions.push(summary.session_id);
    this.add(this.item(summary));
  }

  private note(text: string): void {
    this.add(el('li', 'live-item live-gap', text));
  }

  private add(item: HTMLElement): void {
    if (this.empty) this.empty.hidden = true;
    this.list.insertBefore(item, this.list.firstChild);
    while (this.list.children.length > MAX_ITEMS) this.list.removeChild(this.list.lastChild!);
  }

  private item(s: BatchSummary): HTMLLIElement {
    const item = el('li', 'live-item') as HTMLLIElement;
    item.dataset.session = s.session_id;
    const time = el('time', 'live-time', formatInZone(s.received_at, this.root.dataset.timeZone, true));
    time.setAttribute('datetime', new Date(s.received_at).toISOString());
    const session = document.createElement('a');
    session.className = 'live-session';
    session.href = `/projects/${encodeURIComponent(this.root.dataset.project || '')}/sessions/${encodeURIComponent(s.session_id)}`;
    session.textContent = s.session_id.slice(0, 12);
    session.title = `Session ${s.session_id} (listed once stored, a few seconds after it arrives)`;
    const head = el('div', 'live-head');
    head.append(time, session);
    if (s.user_id) head.append(el('span', 'hm-chip', s.user_id));
    const counts = [`${s.events} event${s.events === 1 ? '' : 's'}`];
    if (s.chunks) counts.push(`${s.chunks} recording chunk${s.chunks === 1 ? '' : 's'}`);
    head.append(el('span', 'live-counts', counts.join(' · ')));
    const events = el('ul', 'live-events');
    for (const e of s.shown) events.appendChild(el('li', `live-ev live-ev-${/^[a-z]+$/.test(e.type) ? e.type : 'other'}`, describeEvent(e)));
    if (s.events > s.shown.length) events.appendChild(el('li', 'live-ev live-more', `+${s.events - s.shown.length} more`));
    const where = [s.country, s.browser, s.os, s.device_type].filter(Boolean).join(' · ');
    item.append(head, events);
    if (where) item.append(el('div', 'live-where', where));
    return item as HTMLLIElement;
  }
}

const root = document.getElementById('hm-live');
if (root) {
  const page = new LivePage(root);
  window.hmLive = page.state;
  page.open();
}
