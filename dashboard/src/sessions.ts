/**
 * Session list page: progressive enhancement only (the list works without it).
 *
 * On the first page, new sessions appear at the top without a reload: every
 * few seconds (while the tab is visible) the page asks the server for the rows
 * of sessions newer than its newest one, with the same filters
 * (`data-newer-url`, answered as server-rendered table rows), and puts them
 * on top. Start times are written by the server in the project's time zone.
 */
import './sessions.css';

const POLL_MS = 5000;
const MAX_POLL_MS = 60000;

/** What tests (and curious developers) can read from the page. */
export interface HmSessions {
  polls: number;
  added: number;
}

declare global {
  interface Window {
    hmSessions?: HmSessions;
  }
}

function newestRow(body: HTMLTableSectionElement): HTMLTableRowElement | null {
  return body.querySelector<HTMLTableRowElement>('tr.hm-row');
}

function startPolling(table: HTMLTableElement, baseUrl: string): void {
  const body = table.tBodies[0];
  if (!body) return;
  const state: HmSessions = { polls: 0, added: 0 };
  window.hmSessions = state;
  let delayMs = POLL_MS;

  async function poll(): Promise<void> {
    const newest = newestRow(body);
    const url = new URL(baseUrl, location.href);
    if (newest) {
      url.searchParams.set('after_ms', newest.dataset.started || '0');
      url.searchParams.set('after_session', newest.dataset.session || '');
    }
    const answer = await fetch(url.toString(), { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    state.polls++;
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const holder = document.createElement('template');
    holder.innerHTML = await answer.text(); // our own server's autoescaped rows; the CSP forbids inline scripts
    const rows = Array.from(holder.content.querySelectorAll<HTMLTableRowElement>('tr.hm-row'));
    const first = newestRow(body);
    for (const row of rows) {
      if (body.querySelector(`tr.hm-row[data-session="${CSS.escape(row.dataset.session || '')}"]`)) continue;
      row.classList.add('hm-new');
      body.insertBefore(row, first);
      state.added++;
    }
    if (rows.length) {
      table.hidden = false;
      const empty = document.querySelector<HTMLElement>('.hm-empty');
      if (empty) empty.hidden = true;
    }
    if (answer.headers.get('X-Hitmetrix-More') === '1') {
      const more = document.getElementById('hm-more-new');
      if (more) more.hidden = false;
    }
  }

  function schedule(): void {
    window.setTimeout(() => {
      if (document.visibilityState !== 'visible') return schedule();
      poll()
        .then(() => (delayMs = POLL_MS))
        .catch(() => (delayMs = Math.min(MAX_POLL_MS, delayMs * 2))) // signed out, server restarting: slow down
        .then(schedule);
    }, delayMs);
  }
  schedule();
}

const table = document.querySelector<HTMLTableElement>('table.hm-table[data-newer-url]');
if (table && table.dataset.newerUrl) startPolling(table, table.dataset.newerUrl);
