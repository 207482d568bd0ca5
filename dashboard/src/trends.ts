/**
 * Trends page: draws the series from the page's JSON data island (the same answer as
 * GET /api/v1/projects/{id}/trends, embedded by the server) as lines or bars, and runs the series editor.
 *
 * The editor's rows have no form names: on submit they are written, as the JSON the API takes, into the one
 * `series` field, so the page's URL is the API's URL under /projects (a view is a link). Each row shows only
 * the fields of its kind; rows are added from a <template> (the CSP allows no inline script) and removed.
 * The line/bar switch redraws in place and rewrites the URL (a reload would only draw the same answer again).
 * While the next view loads, the page says it is busy.
 */
import './analytics.css';
import './trends.css';
import { readDataIsland, setLoading, svgChart } from './charts';
import { drawTrend, PALETTE, TrendLine } from './trendchart';

interface Line {
  series: number;
  label: string;
  math: string;
  data: number[];
  breakdown_value?: string | null;
  other?: boolean;
}

interface Answer {
  labels: string[];
  lines: Line[];
  previous: { labels: string[]; lines: Line[] } | null;
}

interface Island {
  trend: Answer;
  chart: 'line' | 'bar';
}

/** What tests (and curious developers) can read from the page. */
export interface HmTrends {
  drawn: number;
  lines: number;
  chart: string;
}

const state: HmTrends = { drawn: 0, lines: 0, chart: '' };
(window as unknown as { hmTrends: HmTrends }).hmTrends = state;

const MATH_SUFFIX: Record<string, string> = { total: '', visitors: ' · visitors', per_session: ' · per session' };
const FIELDS: Record<string, string[]> = {
  pageview: ['match', 'path'],
  click: ['selector', 'text'],
  submit: ['selector'],
  custom: ['name', 'props'],
};

const root = document.getElementById('hm-trends');

function lineName(line: Line): string {
  let name = line.label;
  if (line.other) name += ' · Other';
  else if (line.breakdown_value !== undefined && line.breakdown_value !== null) name += ` · ${line.breakdown_value || '(none)'}`;
  return name + (MATH_SUFFIX[line.math] || '');
}

function keyOf(line: Line): string {
  return JSON.stringify([line.series, line.other ? null : line.breakdown_value ?? null, !!line.other]);
}

function trendLines(answer: Answer): TrendLine[] {
  const before = new Map<string, number[]>();
  for (const line of answer.previous ? answer.previous.lines : []) before.set(keyOf(line), line.data);
  return answer.lines.map((line) => ({
    name: lineName(line),
    values: line.data,
    previous: answer.previous ? before.get(keyOf(line)) || answer.previous.labels.map(() => 0) : null,
  }));
}

function drawChart(island: Island, kind: 'line' | 'bar'): void {
  const el = document.getElementById('hm-tr-chart');
  if (!el) return;
  setLoading(el, true);
  const chart = svgChart(el);
  const lines = trendLines(island.trend);
  drawTrend(chart, island.trend.labels, lines, kind, island.trend.previous ? island.trend.previous.labels : null);
  state.drawn += 1;
  state.lines = lines.length;
  state.chart = kind;
  // The table's dots take the colours of the chart's lines.
  const dots = Array.from(document.querySelectorAll<HTMLElement>('.hm-tr-table tbody .hm-tr-dot'));
  dots.forEach((dot, i) => dot.setAttribute('data-colour', String(i % PALETTE.length)));
}

function setUpChartSwitch(island: Island): void {
  for (const link of Array.from(document.querySelectorAll<HTMLAnchorElement>('.hm-tr-charttype a[data-chart]'))) {
    link.addEventListener('click', (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || event.button !== 0) return;
      event.preventDefault();
      const kind = link.dataset.chart === 'bar' ? 'bar' : 'line';
      drawChart(island, kind);
      history.replaceState(null, '', link.href);
      for (const other of Array.from(document.querySelectorAll<HTMLAnchorElement>('.hm-tr-charttype a'))) {
        const current = other === link;
        other.classList.toggle('is-current', current);
        if (current) other.setAttribute('aria-current', 'true');
        else other.removeAttribute('aria-current');
      }
    });
  }
}

// --- the editor -------------------------------------------------------------------------------------------------

function field(row: HTMLElement, name: string): HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | null {
  return row.querySelector(`[data-field="${name}"]`);
}

function showFieldsOf(row: HTMLElement): void {
  const kindField = field(row, 'kind');
  const kind = kindField ? kindField.value : 'pageview';
  row.dataset.kind = kind;
  for (const name of ['match', 'path', 'selector', 'text', 'name', 'props']) {
    const label = row.querySelector<HTMLElement>(`.hm-tr-f-${name}`);
    if (label) label.hidden = !(FIELDS[kind] || []).includes(name);
  }
}

function rowsOf(form: HTMLFormElement): HTMLElement[] {
  return Array.from(form.querySelectorAll<HTMLElement>('#hm-tr-rows > .hm-tr-row'));
}

function refreshRows(form: HTMLFormElement): void {
  const rows = rowsOf(form);
  const list = form.querySelector<HTMLElement>('#hm-tr-rows');
  const max = Number(list ? list.dataset.max : 5) || 5;
  rows.forEach((row, i) => {
    const remove = row.querySelector<HTMLButtonElement>('.hm-tr-remove');
    if (remove) remove.hidden = rows.length <= 1;
    const swatch = row.querySelector<HTMLElement>('.hm-tr-swatch');
    if (swatch) swatch.setAttribute('data-colour', String(i % PALETTE.length));
  });
  const add = form.querySelector<HTMLButtonElement>('#hm-tr-add');
  if (add) add.disabled = rows.length >= max;
}

function seriesOf(form: HTMLFormElement): Record<string, unknown>[] {
  return rowsOf(form).map((row) => {
    const value = (name: string): string => {
      const f = field(row, name);
      return f ? f.value.trim() : '';
    };
    const kind = value('kind') || 'pageview';
    const out: Record<string, unknown> = { kind };
    if (kind === 'pageview') {
      out.match = value('match') || 'prefix';
      out.path = value('path');
    } else if (kind === 'click') {
      if (value('selector')) out.selector = value('selector');
      if (value('text')) out.text = value('text');
    } else if (kind === 'submit') {
      if (value('selector')) out.selector = value('selector');
    } else {
      out.name = value('name');
      const props: Record<string, string> = {};
      for (const line of value('props').split('\n')) {
        const at = line.indexOf('=');
        if (at > 0) props[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      if (Object.keys(props).length) out.props = props;
    }
    out.math = value('math') || 'total';
    return out;
  });
}

function busy(): void {
  if (!root) return;
  root.classList.add('is-loading');
  root.setAttribute('aria-busy', 'true');
  const chart = document.getElementById('hm-tr-chart');
  if (chart) setLoading(chart, true);
}

function setUpEditor(form: HTMLFormElement): void {
  const list = form.querySelector<HTMLElement>('#hm-tr-rows');
  const template = form.querySelector<HTMLTemplateElement>('#hm-tr-row-template');
  for (const row of rowsOf(form)) showFieldsOf(row);
  refreshRows(form);
  form.addEventListener('change', (event) => {
    const target = event.target as HTMLElement;
    const row = target.closest<HTMLElement>('.hm-tr-row');
    if (row && target.matches('[data-field="kind"]')) showFieldsOf(row);
    if (target.id === 'hm-tr-breakdown') showBreakdownKey(form);
  });
  form.addEventListener('click', (event) => {
    const target = event.target as HTMLElement;
    if (target.closest('.hm-tr-remove')) {
      const row = target.closest<HTMLElement>('.hm-tr-row');
      if (row && rowsOf(form).length > 1) row.remove();
      refreshRows(form);
    }
  });
  const add = form.querySelector<HTMLButtonElement>('#hm-tr-add');
  if (add && list && template) {
    add.addEventListener('click', () => {
      const fragment = template.content.cloneNode(true) as DocumentFragment;
      const row = fragment.querySelector<HTMLElement>('.hm-tr-row');
      if (!row || rowsOf(form).length >= (Number(list.dataset.max) || 5)) return;
      list.appendChild(fragment);
      showFieldsOf(row);
      refreshRows(form);
      const first = row.querySelector<HTMLElement>('select, input');
      if (first) first.focus();
    });
  }
  showBreakdownKey(form);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const hidden = form.querySelector<HTMLInputElement>('#hm-tr-series');
    if (hidden) hidden.value = JSON.stringify(seriesOf(form));
    const params = new URLSearchParams();
    for (const [name, value] of Array.from(new FormData(form).entries())) {
      if (typeof value !== 'string' || value.trim() === '') continue;
      if (name === 'breakdown' && value === 'prop:') {
        const key = form.querySelector<HTMLInputElement>('#hm-tr-breakdown-key');
        if (key && key.value.trim()) params.append(name, `prop:${key.value.trim()}`);
        continue;
      }
      params.append(name, value.trim());
    }
    busy();
    const query = params.toString();
    window.location.assign(form.action.split('?')[0] + (query ? `?${query}` : ''));
  });
}

function showBreakdownKey(form: HTMLFormElement): void {
  const select = form.querySelector<HTMLSelectElement>('#hm-tr-breakdown');
  const key = form.querySelector<HTMLElement>('.hm-tr-prop-key');
  if (select && key) key.hidden = select.value !== 'prop:';
}

// Links and forms of the shared bar load the next view: say so while it comes.
document.addEventListener('click', (event) => {
  const target = event.target as Element | null;
  const link = target && target.closest ? target.closest<HTMLAnchorElement>('#hm-trends a[data-nav]') : null;
  if (link && !event.defaultPrevented && event.button === 0 && !event.metaKey && !event.ctrlKey) busy();
});
document.addEventListener('submit', (event) => {
  const form = event.target as HTMLFormElement | null;
  if (form && form.matches('#hm-trends form[data-nav]')) busy();
});
const island = readDataIsland<Island>('hm-trends-data');
if (island) {
  drawChart(island, island.chart === 'bar' ? 'bar' : 'line');
  setUpChartSwitch(island);
}
// Back to a page from the browser's cache: it is not loading any more.
window.addEventListener('pageshow', (event) => {
  if (!event.persisted || !root) return;
  root.classList.remove('is-loading');
  root.removeAttribute('aria-busy');
  if (island) drawChart(island, state.chart === 'bar' ? 'bar' : 'line');
});
const editor = document.getElementById('hm-tr-editor') as HTMLFormElement | null;
if (editor) setUpEditor(editor);
