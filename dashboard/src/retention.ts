/**
 * Retention page: draws the retention curve from the page's JSON data island (the average row of the grid the
 * server rendered, from the same query as GET /api/v1/projects/{id}/retention), and keeps the cohort form's
 * text field named after the condition chosen (start_page or start_event, return_page or return_event).
 *
 * A click on a cell of the grid (or on a cohort's size) fetches this view's page with that cell added
 * (`cohort_start=…&offset=…`, which the server answers with the cell's sessions, each linking to its replay),
 * swaps the sessions panel in and pushes the URL, so an opened cell is a shareable view too.
 *
 * The grid, its colours and every link are server-rendered: the page works without this script, minus the chart
 * (a cell's link then loads the same view).
 */
import './analytics.css';
import './retention.css';
import { markBusyWhileLeaving } from './busy';
import { readDataIsland, svgChart } from './charts';
import { drawPercentLines, PercentSeries } from './curves';

interface Island {
  labels: string[];
  series: PercentSeries[];
}

function setUpConditions(root: HTMLElement): void {
  for (const box of Array.from(root.querySelectorAll<HTMLElement>('[data-cond]'))) {
    const prefix = box.dataset.cond || '';
    const kind = box.querySelector<HTMLSelectElement>('[data-cond-kind]');
    const value = box.querySelector<HTMLInputElement>('[data-cond-value]');
    if (!kind || !value) continue;
    const apply = (): void => {
      const chosen = kind.value === 'event' ? 'event' : kind.value === 'page' ? 'page' : '';
      value.hidden = chosen === '';
      // "Any" sends no condition at all; a hidden field would still be sent, so it is switched off.
      value.disabled = chosen === '';
      value.name = `${prefix}_${chosen || 'page'}`;
      value.placeholder = chosen === 'event' ? 'signup' : '/pricing or /blog/*';
      value.required = chosen !== '';
    };
    kind.addEventListener('change', () => {
      apply();
      if (!value.hidden) value.focus();
    });
    apply();
  }
}

/** What tests (and curious developers) can read from the page. */
export interface HmRetention {
  opened: number;
  failures: number;
}

const state: HmRetention = { opened: 0, failures: 0 };
(window as unknown as { hmRetention: HmRetention }).hmRetention = state;
let latest = 0;

function cellKey(url: string): string {
  const params = new URL(url, window.location.href).searchParams;
  return `${params.get('cohort_start') || ''}|${params.get('offset') || ''}`;
}

/** Marks the grid's cell whose sessions the panel lists (none after "Close"). */
function markOpen(root: HTMLElement, url: string): void {
  const key = cellKey(url);
  for (const link of Array.from(root.querySelectorAll<HTMLAnchorElement>('#hm-rt-grid a[data-cell-link]'))) {
    const open = key !== '|' && cellKey(link.href) === key;
    link.parentElement?.classList.toggle('is-open', open);
    if (open) link.setAttribute('aria-current', 'true');
    else link.removeAttribute('aria-current');
  }
}

/** Fetches the view at `url` and swaps its sessions panel in; a full page load on anything unexpected. */
async function openCell(root: HTMLElement, url: string, push: boolean): Promise<void> {
  const current = document.getElementById('hm-rt-sessions');
  if (!current) {
    window.location.assign(url);
    return;
  }
  const ticket = ++latest;
  current.classList.add('is-loading');
  current.setAttribute('aria-busy', 'true');
  try {
    const answer = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    const type = answer.headers.get('content-type') || '';
    if (answer.redirected || !type.startsWith('text/html') || (answer.status !== 200 && answer.status !== 400)) {
      throw new Error(`unexpected answer ${answer.status}`);
    }
    const html = await answer.text();
    if (ticket !== latest) return; // a newer click won
    const parsed = new DOMParser().parseFromString(html, 'text/html');
    const next = parsed.getElementById('hm-rt-sessions') || parsed.querySelector('.hm-ov-error');
    if (!next) throw new Error('no sessions panel in the answer');
    const adopted = document.importNode(next, true) as HTMLElement;
    adopted.id = 'hm-rt-sessions';
    current.replaceWith(adopted);
    if (push) history.pushState({ hmRetention: true }, '', url);
    markOpen(root, url);
    state.opened += 1;
    adopted.scrollIntoView({ block: 'nearest' });
  } catch (e) {
    state.failures += 1;
    if (ticket === latest) window.location.assign(url);
  }
}

function setUpCells(root: HTMLElement): void {
  root.addEventListener('click', (event) => {
    const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
    if (event.defaultPrevented || event.button !== 0 || modified) return;
    const link = (event.target as Element).closest<HTMLAnchorElement>('a[data-cell-link], a[data-close]');
    if (!link || link.origin !== window.location.origin) return;
    event.preventDefault();
    void openCell(root, link.href, true);
  });
  // Back and forward move between opened cells of the same view.
  window.addEventListener('popstate', () => void openCell(root, window.location.href, false));
}

function setUp(root: HTMLElement): void {
  setUpConditions(root);
  markBusyWhileLeaving(root);
  setUpCells(root);
  const island = readDataIsland<Island>('hm-retention-data', root);
  const chartEl = root.querySelector<HTMLElement>('#hm-rt-chart');
  if (!island || !chartEl) return; // a 400 page: nothing to draw
  drawPercentLines(svgChart(chartEl), island.labels, island.series);
}

const root = document.getElementById('hm-retention');
if (root) setUp(root);
