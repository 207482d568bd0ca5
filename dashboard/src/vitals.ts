/**
 * Web vitals page: draws the p75 of the chosen metric per bucket from the page's JSON data island (the same query
 * as GET /api/v1/projects/{id}/vitals), with web.dev's good and poor limits as dashed lines. A bucket without a
 * measurement is a gap, not a zero.
 *
 * Tiles, the page table, sorting and every link are server-rendered: the page works without this script, minus
 * the chart.
 */
import './analytics.css';
import './vitals.css';
import { MarkLineComponent } from 'echarts/components';
import { ACCENT, echarts, readDataIsland, shortBucket, svgChart } from './charts';

echarts.use([MarkLineComponent]);

const AXIS_COLOR = '#6b7280';
const GRID_COLOR = '#e5e7eb';
const GOOD_COLOR = '#1f8a55';
const POOR_COLOR = '#d63b3b';
const NARROW_PX = 480;

interface Island {
  metric: string;
  label: string;
  unit: string;
  good: number;
  poor: number;
  labels: string[];
  values: (number | null)[];
  pageviews: number[];
}

/** 0.123 for CLS; 180 ms; 2.45 s. */
export function metricText(unit: string, value: number): string {
  if (unit !== 'ms') return value.toFixed(3);
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

function draw(el: HTMLElement, island: Island): void {
  const chart = svgChart(el);
  const narrow = chart.getWidth() < NARROW_PX;
  const seconds = island.unit === 'ms';
  const highest = Math.max(island.poor * 1.15, ...island.values.map((v) => v ?? 0));
  chart.setOption({
    animation: false,
    grid: { left: narrow ? 44 : 56, right: 16, top: 16, bottom: narrow ? 40 : 32 },
    tooltip: {
      trigger: 'axis',
      confine: true,
      formatter: (items: unknown) => {
        const first = (items as { dataIndex: number; axisValueLabel: string }[])[0];
        if (!first) return '';
        const value = island.values[first.dataIndex];
        const n = island.pageviews[first.dataIndex];
        const shown = value === null ? 'no measurement' : `${metricText(island.unit, value)} (p75 of ${n})`;
        // Text only: ECharts puts the formatter's string into the tooltip as HTML.
        const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
        return `${escape(first.axisValueLabel)}<br>${escape(island.metric.toUpperCase())}: ${escape(shown)}`;
      },
    },
    xAxis: {
      type: 'category',
      data: island.labels,
      boundaryGap: false,
      axisLine: { lineStyle: { color: GRID_COLOR } },
      axisLabel: { color: AXIS_COLOR, hideOverlap: true, fontSize: narrow ? 10 : 12, formatter: shortBucket },
    },
    yAxis: {
      type: 'value',
      min: 0,
      max: (value: { max: number }) => Math.max(value.max, highest),
      splitLine: { lineStyle: { color: GRID_COLOR } },
      axisLabel: {
        color: AXIS_COLOR,
        fontSize: narrow ? 10 : 12,
        formatter: (v: number) => (seconds ? (v >= 1000 ? `${v / 1000}s` : `${v}ms`) : String(v)),
      },
    },
    series: [
      {
        name: island.metric.toUpperCase(),
        type: 'line',
        data: island.values.map((v) => (v === null ? '-' : v)),
        connectNulls: false,
        showSymbol: island.labels.length <= 31,
        symbolSize: 6,
        lineStyle: { width: 2 },
        color: ACCENT,
        markLine: {
          silent: true,
          symbol: 'none',
          label: { color: AXIS_COLOR, fontSize: 10, position: 'insideEndTop' },
          data: [
            { yAxis: island.good, name: 'good', lineStyle: { color: GOOD_COLOR, type: 'dashed' },
              label: { formatter: `good ≤ ${metricText(island.unit, island.good)}` } },
            { yAxis: island.poor, name: 'poor', lineStyle: { color: POOR_COLOR, type: 'dashed' },
              label: { formatter: `poor > ${metricText(island.unit, island.poor)}` } },
          ],
        },
      },
    ],
  }, true);
}

function setUp(root: HTMLElement): void {
  for (const form of Array.from(root.querySelectorAll<HTMLFormElement>('form'))) {
    // A new view is a new page load: say so while the query runs.
    form.addEventListener('submit', () => {
      root.classList.add('is-loading');
      root.setAttribute('aria-busy', 'true');
    });
  }
  const island = readDataIsland<Island>('hm-vitals-data', root);
  const chartEl = root.querySelector<HTMLElement>('#hm-vt-chart');
  if (!island || !chartEl) return; // a 400 page: nothing to draw
  draw(chartEl, island);
}

const root = document.getElementById('hm-vitals');
if (root) setUp(root);
