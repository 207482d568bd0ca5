/**
 * The trends chart: several lines (or grouped bars) over the same buckets, with a legend, and the previous
 * period's lines dashed beside them (lined up by position, as its buckets are other days). Built on the shared
 * ECharts set-up of charts.ts; it adds only the bar chart and the legend this page needs.
 */
import { BarChart } from 'echarts/charts';
import { LegendComponent } from 'echarts/components';
import { ACCENT, echarts, shortBucket } from './charts';

echarts.use([BarChart, LegendComponent]);

/** One colour per line, the first the dashboard's accent; readable on white and told apart when printed grey. */
export const PALETTE = [ACCENT, '#0891b2', '#d97706', '#16a34a', '#db2777', '#7c3aed', '#65a30d', '#dc2626',
  '#0d9488', '#9333ea'];
const AXIS_COLOR = '#6b7280';
const GRID_COLOR = '#e5e7eb';
const NARROW_PX = 480;

export interface TrendLine {
  name: string;
  values: number[];
  /** The same line in the previous period (its own buckets, lined up by position), or null. */
  previous: number[] | null;
}

/** Draws the lines as `kind` (line or bar) over `labels`; a line's previous period is dashed and paler. */
export function drawTrend(chart: echarts.ECharts, labels: string[], lines: TrendLine[], kind: 'line' | 'bar',
  previousLabels: string[] | null): void {
  const narrow = chart.getWidth() < NARROW_PX;
  const series: Record<string, unknown>[] = [];
  lines.forEach((line, i) => {
    const color = PALETTE[i % PALETTE.length];
    series.push({
      name: line.name,
      type: kind,
      data: line.values,
      color,
      showSymbol: labels.length <= 31,
      symbolSize: 5,
      lineStyle: { width: 2 },
      barMaxWidth: 28,
    });
    if (line.previous) {
      series.push({
        name: `${line.name} (previous)`,
        type: kind,
        data: labels.map((_, j) => (line.previous && j < line.previous.length ? line.previous[j] : null)),
        color,
        showSymbol: false,
        lineStyle: { width: 1.5, type: 'dashed', opacity: 0.7 },
        itemStyle: { opacity: 0.35 },
        barMaxWidth: 28,
      });
    }
  });
  chart.setOption(
    {
      animation: false,
      legend: {
        type: 'scroll',
        top: 0,
        left: 0,
        right: 0,
        textStyle: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12, width: narrow ? 140 : 260, overflow: 'truncate' },
      },
      grid: { left: narrow ? 36 : 48, right: 12, top: narrow ? 44 : 40, bottom: narrow ? 40 : 32 },
      tooltip: {
        trigger: 'axis',
        confine: true,
        formatter: (items: unknown) => tooltip(items as TooltipItem[], labels, previousLabels),
      },
      xAxis: {
        type: 'category',
        data: labels,
        boundaryGap: kind === 'bar',
        axisLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, hideOverlap: true, fontSize: narrow ? 10 : 12, formatter: shortBucket },
      },
      yAxis: {
        type: 'value',
        splitLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12 },
      },
      series,
    },
    true,
  );
}

interface TooltipItem {
  dataIndex: number;
  seriesName: string;
  value: number | null;
  marker: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The bucket (and the previous period's bucket at the same position) with every line's value. */
function tooltip(items: TooltipItem[], labels: string[], previousLabels: string[] | null): string {
  if (!items.length) return '';
  const at = items[0].dataIndex;
  let head = escapeHtml(labels[at] || '');
  if (previousLabels && previousLabels[at]) head += ` <span class="hm-tr-tip-prev">vs ${escapeHtml(previousLabels[at])}</span>`;
  const rows = items
    .filter((item) => item.value !== null && item.value !== undefined)
    .map((item) => `${item.marker}${escapeHtml(item.seriesName)}: <b>${Number(item.value).toLocaleString()}</b>`);
  return [head, ...rows].join('<br>');
}
