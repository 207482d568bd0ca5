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
import { openLinksInPanel, sessionsPanel } from './sessions_panel';

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

function setUpCells(root: HTMLElement): void {
  const openCell = sessionsPanel({
    panelId: 'hm-rt-sessions',
    counts: state,
    historyState: { hmRetention: true },
    afterSwap: (url) => markOpen(root, url),
  });
  openLinksInPanel(root, 'a[data-cell-link], a[data-close]', openCell);
  // Back and forward move between opened cells of the same view.
  window.addEventListener('popstate', () => void openCell(window.location.href, false));
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
