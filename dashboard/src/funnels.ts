/**
 * Funnels page: draws the funnel's bars and its conversion trend from the page's JSON data island (the same
 * answer as GET /api/v1/projects/{id}/funnels, embedded by the server), and makes the builder comfortable:
 * each row shows the fields of its kind, rows can be added and removed, and submitting puts only the fields
 * that mean something into the URL. Every view is still a plain GET of the page, so the server renders it
 * (the page works without this script, minus the charts); while the next view loads the page says it is busy.
 */
import './analytics.css';
import './funnels.css';
import { readDataIsland, setLoading, svgChart } from './charts';
import { drawConversionTrend, drawFunnelBars, FunnelStep, TrendDay } from './funnelcharts';

interface Answer {
  steps: FunnelStep[];
  trend: TrendDay[];
  previous?: { steps: FunnelStep[]; trend: TrendDay[] };
}

interface Island {
  funnel: Answer;
  labels: string[];
  converted_urls: (string | null)[];
  dropped_urls: (string | null)[];
}

/** What tests (and curious developers) can read from the page. */
export interface HmFunnels {
  drawn: boolean;
  picked: string | null;
}

const state: HmFunnels = { drawn: false, picked: null };
(window as unknown as { hmFunnels: HmFunnels }).hmFunnels = state;

const root = document.getElementById('hm-funnels');

function busy(): void {
  if (!root) return;
  root.classList.add('is-loading');
  root.setAttribute('aria-busy', 'true');
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('#hm-fn-chart, #hm-fn-trend'))) setLoading(el, true);
}

function go(url: string): void {
  state.picked = url;
  busy();
  window.location.assign(url);
}

function drawCharts(container: HTMLElement): void {
  const island = readDataIsland<Island>('hm-funnels-data', container);
  if (!island) return; // an empty builder or a 400 page: nothing to draw
  const previous = island.funnel.previous || null;
  const barsEl = container.querySelector<HTMLElement>('#hm-fn-chart');
  if (barsEl) {
    drawFunnelBars(svgChart(barsEl), island.labels, island.funnel.steps, previous && previous.steps, (i, outcome) => {
      const url = (outcome === 'converted' ? island.converted_urls : island.dropped_urls)[i];
      if (url) go(url);
    });
  }
  const trendEl = container.querySelector<HTMLElement>('#hm-fn-trend');
  if (trendEl) drawConversionTrend(svgChart(trendEl), island.funnel.trend, previous && previous.trend);
  state.drawn = true;
}

// --- the builder ---------------------------------------------------------------------------------------------

function rowsOf(list: HTMLElement): HTMLLIElement[] {
  return Array.from(list.children).filter((el): el is HTMLLIElement => el instanceof HTMLLIElement);
}

/** Names the fields of each row after its place (s1_path, s2_path, …) and shows which rows can go or come. */
function renumber(list: HTMLElement): void {
  const prefix = list.dataset.prefix || 's';
  const rows = rowsOf(list);
  rows.forEach((row, i) => {
    const n = row.querySelector<HTMLElement>('.hm-fn-num');
    if (n) n.textContent = String(i + 1);
    for (const field of Array.from(row.querySelectorAll<HTMLInputElement>('[data-field]'))) {
      field.name = `${prefix}${i + 1}_${field.dataset.field}`;
    }
    const remove = row.querySelector<HTMLButtonElement>('.hm-fn-remove');
    if (remove) remove.hidden = prefix === 's' && rows.length <= 2;
  });
  const add = document.querySelector<HTMLButtonElement>(`.hm-fn-add[data-target="${list.id}"]`);
  if (add) add.hidden = rows.length >= Number(list.dataset.max || 10);
}

function showKind(row: HTMLElement): void {
  const kind = row.querySelector<HTMLSelectElement>('select[data-field="kind"]');
  row.dataset.kind = kind ? kind.value : '';
}

/** A new row: a pageview whose path is exactly what will be typed (a clone keeps attributes, not values). */
function blank(row: HTMLElement): void {
  for (const field of Array.from(row.querySelectorAll<HTMLInputElement>('[data-field]'))) {
    if (field.dataset.field === 'kind') field.value = 'pageview';
    else if (field.dataset.field === 'match') field.value = 'exact';
    else field.value = '';
    field.removeAttribute('aria-invalid');
    field.classList.remove('is-invalid');
  }
}

function setUpBuilder(form: HTMLFormElement): void {
  for (const list of Array.from(form.querySelectorAll<HTMLElement>('.hm-fn-rows'))) {
    // The server sends a spare empty row to add with when there is no script; here "+ Add" does that.
    const rows = rowsOf(list);
    const last = rows[rows.length - 1];
    const template = last.cloneNode(true) as HTMLLIElement;
    const minimum = list.dataset.prefix === 's' ? 2 : 0;
    if (rows.length > minimum && !(last.querySelector<HTMLSelectElement>('select[data-field="kind"]') || { value: '' }).value) {
      last.remove();
    }
    const add = form.querySelector<HTMLButtonElement>(`.hm-fn-add[data-target="${list.id}"]`);
    if (add) {
      add.addEventListener('click', () => {
        const row = template.cloneNode(true) as HTMLLIElement;
        blank(row);
        list.appendChild(row);
        showKind(row);
        renumber(list);
        const first = row.querySelector<HTMLElement>('[data-field="path"]');
        if (first) first.focus();
      });
    }
    list.addEventListener('click', (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>('.hm-fn-remove');
      if (!button) return;
      const row = button.closest('li');
      if (row) row.remove();
      renumber(list);
    });
    for (const row of rowsOf(list)) showKind(row);
    renumber(list);
  }
  form.addEventListener('change', (event) => {
    const target = event.target as HTMLElement;
    if (target.matches('select[data-field="kind"]')) {
      const row = target.closest<HTMLElement>('.hm-fn-row');
      if (row) showKind(row);
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go(builderUrl(form));
  });
}

/** The form's URL with only what counts: no empty fields, no rows without a kind, no fields of other kinds. */
export function builderUrl(form: HTMLFormElement): string {
  const params = new URLSearchParams();
  for (const el of Array.from(form.elements) as HTMLInputElement[]) {
    if (!el.name || el.disabled || el.type === 'button' || el.type === 'submit') continue;
    const value = el.value.trim();
    if (!value) continue;
    const row = el.closest<HTMLElement>('.hm-fn-row');
    if (row) {
      const kind = row.dataset.kind || '';
      const field = el.dataset.field || '';
      if (!kind || !fieldsOf(kind).includes(field)) continue;
    }
    params.append(el.name, field(el) === 'props' || field(el) === 'path' ? el.value : value);
  }
  const query = params.toString();
  return form.action.split('?')[0] + (query ? '?' + query : '');
}

function field(el: HTMLElement): string {
  return el.dataset.field || '';
}

function fieldsOf(kind: string): string[] {
  const common = ['kind', 'from', 'to'];
  const own: Record<string, string[]> = {
    pageview: ['match', 'path'],
    click: ['selector', 'text'],
    submit: ['selector'],
    custom: ['name', 'props'],
  };
  return common.concat(own[kind] || ['match', 'path', 'selector', 'text', 'name', 'props']);
}

if (root) {
  const form = root.querySelector<HTMLFormElement>('#hm-fn-builder');
  if (form) setUpBuilder(form);
  drawCharts(root);
  // Every other link and form of the page is a plain navigation: say the next view is on its way.
  root.addEventListener('click', (event) => {
    const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
    const link = (event.target as Element).closest<HTMLAnchorElement>('a[href]');
    if (!modified && event.button === 0 && link && link.origin === window.location.origin && !link.hash) busy();
  });
  root.addEventListener('submit', (event) => {
    if (!event.defaultPrevented) busy();
  });
  // Back to a page kept in the browser's cache: it is not loading any more.
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted) return;
    root.classList.remove('is-loading');
    root.removeAttribute('aria-busy');
    for (const el of Array.from(root.querySelectorAll<HTMLElement>('#hm-fn-chart, #hm-fn-trend'))) {
      el.classList.remove('is-loading');
      el.dataset.drawn = '1';
    }
  });
}
