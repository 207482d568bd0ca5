/**
 * Overview page: draws the time series and the world map from the page's JSON data island (the same answer
 * as GET /api/v1/projects/{id}/overview, embedded by the server), and moves between views without a reload.
 *
 * The server renders the tiles, tables and links (the page works without this script, minus the charts).
 * A click on a link or a submit of a form marked `data-nav` fetches that view's page, swaps `#hm-overview`
 * for the new one and pushes its URL, so every view stays a shareable link; while the query runs the page
 * is marked busy (`is-loading`, `aria-busy`). Back and forward do the same.
 */
import './analytics.css';
import { disposeCharts, drawLines, readDataIsland, setLoading, svgChart } from './charts';
import { fetchPage } from './page_fetch';
import { drawWorld } from './worldmap';

interface Bucket {
  bucket: string;
  visitors: number;
  sessions: number;
  pageviews: number;
}

interface Island {
  overview: {
    series: Bucket[];
    countries: { value: string; visitors: number }[];
  };
  country_urls: Record<string, string | null>;
}

type Metric = 'visitors' | 'sessions' | 'pageviews';
const METRIC_NAMES: Record<Metric, string> = { visitors: 'Visitors', sessions: 'Sessions', pageviews: 'Pageviews' };

/** What tests (and curious developers) can read from the page. */
export interface HmOverview {
  navigations: number;
  failures: number;
}

const state: HmOverview = { navigations: 0, failures: 0 };
(window as unknown as { hmOverview: HmOverview }).hmOverview = state;
let metric: Metric = 'visitors';
let latest = 0;

function root(): HTMLElement | null {
  return document.getElementById('hm-overview');
}

function setUp(container: HTMLElement): void {
  const island = readDataIsland<Island>('hm-overview-data', container);
  if (!island) return; // a 400 page: nothing to draw
  const chartEl = container.querySelector<HTMLElement>('#hm-ov-chart');
  const select = container.querySelector<HTMLSelectElement>('#hm-ov-metric');
  if (chartEl) {
    const chart = svgChart(chartEl);
    const draw = (): void => {
      const series = island.overview.series;
      drawLines(
        chart,
        series.map((b) => b.bucket),
        [{ name: METRIC_NAMES[metric], values: series.map((b) => b[metric]) }],
      );
    };
    if (select) {
      select.value = metric;
      select.addEventListener('change', () => {
        metric = (select.value in METRIC_NAMES ? select.value : 'visitors') as Metric;
        draw();
      });
    }
    draw();
  }
  const mapEl = container.querySelector<HTMLElement>('#hm-ov-map');
  if (mapEl) {
    const values: Record<string, number> = {};
    for (const row of island.overview.countries) values[row.value] = row.visitors;
    drawWorld(svgChart(mapEl), values, (code) => {
      const url = island.country_urls[code];
      if (url) void navigate(url, true);
    });
  }
}

/** Fetches the view at `url` and swaps it in; falls back to a full page load on anything unexpected. */
async function navigate(url: string, push: boolean): Promise<void> {
  const current = root();
  if (!current) return;
  const ticket = ++latest;
  current.classList.add('is-loading');
  current.setAttribute('aria-busy', 'true');
  for (const el of Array.from(current.querySelectorAll<HTMLElement>('#hm-ov-chart, #hm-ov-map'))) setLoading(el, true);
  try {
    const parsed = await fetchPage(url);
    if (ticket !== latest) return; // a newer navigation won
    const next = parsed.getElementById('hm-overview');
    if (!next) throw new Error('no overview in the answer');
    const adopted = document.importNode(next, true);
    disposeCharts(current);
    current.replaceWith(adopted);
    if (push) history.pushState({ hmOverview: true }, '', url);
    state.navigations += 1;
    setUp(adopted);
  } catch (e) {
    state.failures += 1;
    if (ticket === latest) window.location.assign(url);
  }
}

function formUrl(form: HTMLFormElement): string {
  const params = new URLSearchParams();
  for (const [name, value] of Array.from(new FormData(form).entries())) {
    if (typeof value === 'string' && value.trim() !== '') params.append(name, value.trim());
  }
  const query = params.toString();
  return form.action.split('?')[0] + (query ? '?' + query : '');
}

document.addEventListener('click', (event) => {
  // A click with a modifier opens a new tab or window: leave it to the browser.
  const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
  if (event.defaultPrevented || event.button !== 0 || modified) return;
  const target = event.target as Element | null;
  const link = target && target.closest ? target.closest<HTMLAnchorElement>('#hm-overview a[data-nav]') : null;
  if (!link || link.origin !== window.location.origin) return;
  event.preventDefault();
  void navigate(link.href, true);
});

document.addEventListener('submit', (event) => {
  const form = event.target as HTMLFormElement | null;
  if (!form || !form.matches('#hm-overview form[data-nav]')) return;
  event.preventDefault();
  void navigate(formUrl(form), true);
});

window.addEventListener('popstate', () => {
  void navigate(window.location.href, false);
});

const first = root();
if (first) setUp(first);
