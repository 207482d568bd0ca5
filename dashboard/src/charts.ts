/**
 * Chart helpers shared by the analytics pages: Apache ECharts, tree-shaken (only what a page imports is
 * bundled) and drawn as SVG, which needs no eval and no inline script, so it runs under the dashboard's CSP.
 *
 * A chart container starts with the class `is-loading` (a "Drawing…" note the stylesheet shows); it goes
 * once the chart has finished drawing, and the container gets `data-drawn="1"`, which tests wait for.
 */
import * as echarts from 'echarts/core';
import { LineChart } from 'echarts/charts';
import { GridComponent, TooltipComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([LineChart, GridComponent, TooltipComponent, SVGRenderer]);

export { echarts };

export const ACCENT = '#4f46e5';
const AXIS_COLOR = '#6b7280';
const GRID_COLOR = '#e5e7eb';
const NARROW_PX = 480;

/**
 * The JSON a page embeds for its script in the `data-json` attribute of the element `#id` (a data island:
 * the CSP allows no inline script, JSON ones included), or null when it is missing or broken.
 */
export function readDataIsland<T>(id: string, root: ParentNode = document): T | null {
  const el = root.querySelector<HTMLElement>(`#${id}`);
  const text = el && el.dataset.json;
  if (!text) return null;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    return null;
  }
}

/** An SVG chart in `el`, redrawn at the container's width when it changes (phone rotation, a side panel). */
export function svgChart(el: HTMLElement): echarts.ECharts {
  const existing = echarts.getInstanceByDom(el);
  if (existing) existing.dispose();
  const chart = echarts.init(el, undefined, { renderer: 'svg' });
  chart.on('finished', () => {
    el.classList.remove('is-loading');
    el.dataset.drawn = '1';
  });
  if (typeof ResizeObserver !== 'undefined') {
    let pending = 0;
    // Resized in the next frame, not inside the callback: a chart that changes the page's height (a scroll bar
    // coming or going) would otherwise trigger "ResizeObserver loop completed with undelivered notifications".
    const observer = new ResizeObserver(() => {
      if (pending) return;
      pending = requestAnimationFrame(() => {
        pending = 0;
        if (chart.isDisposed()) observer.disconnect();
        else chart.resize();
      });
    });
    observer.observe(el);
  }
  return chart;
}

/** Disposes of every chart under `root` (before it leaves the page: a chart left behind keeps timers). */
export function disposeCharts(root: ParentNode): void {
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('[_echarts_instance_]'))) {
    const chart = echarts.getInstanceByDom(el);
    if (chart) chart.dispose();
  }
}

/** Marks a container as waiting for a query or a drawing. */
export function setLoading(el: HTMLElement, loading: boolean): void {
  el.classList.toggle('is-loading', loading);
  if (loading) delete el.dataset.drawn;
}

export interface LineSeries {
  name: string;
  values: number[];
}

/** A line chart of one or more series over category labels (buckets), readable from 375 px up. */
export function drawLines(chart: echarts.ECharts, labels: string[], series: LineSeries[]): void {
  const narrow = chart.getWidth() < NARROW_PX;
  chart.setOption(
    {
      animation: false,
      grid: { left: narrow ? 36 : 48, right: 12, top: 16, bottom: narrow ? 40 : 32 },
      tooltip: { trigger: 'axis', confine: true },
      xAxis: {
        type: 'category',
        data: labels,
        boundaryGap: false,
        axisLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, hideOverlap: true, fontSize: narrow ? 10 : 12, formatter: shortBucket },
      },
      yAxis: {
        type: 'value',
        minInterval: 1,
        splitLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12 },
      },
      series: series.map((s, i) => ({
        name: s.name,
        type: 'line',
        data: s.values,
        showSymbol: labels.length <= 31,
        symbolSize: 5,
        lineStyle: { width: 2 },
        areaStyle: i === 0 ? { opacity: 0.08 } : undefined,
        color: i === 0 ? ACCENT : undefined,
      })),
    },
    true,
  );
}

/** "2026-12-01 14:00" → "14:00"; "2026-12-01" → "1 Dec": axis labels (the tooltip keeps the full bucket). */
export function shortBucket(label: string): string {
  const hour = /^\d{4}-\d{2}-\d{2} (\d{2}:\d{2})$/.exec(label);
  if (hour) return hour[1];
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(label);
  if (day) {
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    return `${Number(day[3])} ${months[Number(day[2]) - 1]}`;
  }
  return label;
}
