/**
 * Funnel charts (ECharts as SVG, through charts.ts): the bars of a funnel's steps with the drop-off stacked on
 * each, and a conversion-per-day line with the previous period beside it. Bars stand up at desktop widths and
 * lie down on a phone, where a step's name needs the width.
 */
import { BarChart, LineChart } from 'echarts/charts';
import { LegendComponent } from 'echarts/components';
import { ACCENT, echarts, shortBucket } from './charts';

echarts.use([BarChart, LineChart, LegendComponent]);

const DROPPED_COLOR = '#f3a5a5';
const PREVIOUS_COLOR = '#a5adbb';
const ENTERED_COLOR = '#dfe3ff';
const AXIS_COLOR = '#6b7280';
const GRID_COLOR = '#e5e7eb';
const NARROW_PX = 480;

export interface FunnelStep {
  step: number;
  sessions: number;
  conversion: number;
  from_previous: number;
  dropped: number;
}

export type Outcome = 'converted' | 'dropped';

/**
 * Per step, the sessions that reached it (with their share of step 1) and, stacked on them, those that dropped
 * off just before it; `previous` adds the previous period's sessions per step. `onPick(index, outcome)` is
 * called when a bar is clicked.
 */
export function drawFunnelBars(
  chart: echarts.ECharts,
  labels: string[],
  steps: FunnelStep[],
  previous: FunnelStep[] | null,
  onPick: (index: number, outcome: Outcome) => void,
): void {
  const narrow = chart.getWidth() < NARROW_PX;
  const names = labels.map((label, i) => `${i + 1}. ${label}`);
  const categoryAxis = {
    type: 'category' as const,
    data: names,
    inverse: narrow,
    axisLine: { lineStyle: { color: GRID_COLOR } },
    axisTick: { show: false },
    axisLabel: {
      color: AXIS_COLOR,
      fontSize: narrow ? 10 : 12,
      interval: 0,
      width: narrow ? 110 : Math.max(60, chart.getWidth() / Math.max(1, labels.length) - 12),
      overflow: 'truncate' as const,
    },
  };
  const valueAxis = {
    type: 'value' as const,
    minInterval: 1,
    splitLine: { lineStyle: { color: GRID_COLOR } },
    axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12 },
  };
  const series: Record<string, unknown>[] = [
    {
      name: 'Reached the step',
      type: 'bar',
      stack: 'funnel',
      data: steps.map((s) => s.sessions),
      color: ACCENT,
      barMaxWidth: 72,
      cursor: 'pointer',
      label: {
        show: true,
        position: narrow ? 'insideLeft' : 'insideTop',
        color: '#fff',
        fontSize: 11,
        formatter: (p: { dataIndex: number }) => (steps[p.dataIndex].sessions ? `${steps[p.dataIndex].conversion}%` : ''),
      },
    },
    {
      name: 'Dropped off before it',
      type: 'bar',
      stack: 'funnel',
      data: steps.map((s, i) => (i ? s.dropped : 0)),
      color: DROPPED_COLOR,
      barMaxWidth: 72,
      cursor: 'pointer',
    },
  ];
  if (previous) {
    series.push({
      name: 'Previous period',
      type: 'bar',
      data: previous.map((s) => s.sessions),
      color: PREVIOUS_COLOR,
      barMaxWidth: 28,
    });
  }
  chart.setOption(
    {
      animation: false,
      legend: { top: 0, left: 0, itemWidth: 12, itemHeight: 10, textStyle: { color: AXIS_COLOR, fontSize: 12 } },
      grid: narrow
        ? { left: 116, right: 12, top: 36, bottom: 24 }
        : { left: 48, right: 12, top: 36, bottom: 32 },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        confine: true,
        formatter: (items: { dataIndex: number }[]) => {
          const i = items.length ? items[0].dataIndex : 0;
          const s = steps[i];
          const lines = [
            escapeText(names[i]),
            `${s.sessions} sessions · ${s.conversion}% of step 1`,
            i ? `${s.from_previous}% of step ${i} · ${s.dropped} dropped off` : '',
            previous ? `Previous period: ${previous[i].sessions} (${previous[i].conversion}%)` : '',
          ];
          return lines.filter(Boolean).join('<br>');
        },
      },
      xAxis: narrow ? valueAxis : categoryAxis,
      yAxis: narrow ? categoryAxis : valueAxis,
      series,
    },
    true,
  );
  chart.off('click');
  chart.on('click', (p) => {
    if (p.componentType !== 'series' || typeof p.dataIndex !== 'number') return;
    if (p.seriesIndex === 0) onPick(p.dataIndex, 'converted');
    else if (p.seriesIndex === 1) onPick(p.dataIndex, 'dropped');
  });
}

export interface TrendDay {
  day: string;
  entered: number;
  converted: number;
  conversion: number;
}

/**
 * Conversion (%) of the sessions that entered on each day, over bars of how many entered (so a 100 % day of one
 * session reads as what it is); days nobody entered are gaps in the line, not 0 %.
 */
export function drawConversionTrend(chart: echarts.ECharts, days: TrendDay[], previous: TrendDay[] | null): void {
  const narrow = chart.getWidth() < NARROW_PX;
  const rate = (d: TrendDay): number | null => (d.entered ? d.conversion : null);
  const series: Record<string, unknown>[] = [
    {
      name: 'Entered',
      type: 'bar',
      yAxisIndex: 1,
      data: days.map((d) => d.entered),
      color: ENTERED_COLOR,
      barMaxWidth: 16,
    },
    {
      name: 'Conversion',
      type: 'line',
      data: days.map(rate),
      connectNulls: false,
      showSymbol: true,
      symbolSize: 5,
      lineStyle: { width: 2 },
      color: ACCENT,
    },
  ];
  if (previous) {
    series.push({
      name: 'Previous period',
      type: 'line',
      // Day i of the previous period beside day i of this one.
      data: days.map((_, i) => (previous[i] ? rate(previous[i]) : null)),
      connectNulls: false,
      showSymbol: true,
      symbolSize: 3,
      lineStyle: { width: 1.5, type: 'dashed' },
      color: PREVIOUS_COLOR,
    });
  }
  chart.setOption(
    {
      animation: false,
      legend: { top: 0, right: 0, itemWidth: 12, itemHeight: 10, textStyle: { color: AXIS_COLOR, fontSize: 12 } },
      grid: { left: narrow ? 36 : 48, right: narrow ? 28 : 40, top: 32, bottom: narrow ? 40 : 32 },
      tooltip: {
        trigger: 'axis',
        confine: true,
        formatter: (items: { dataIndex: number }[]) => {
          const i = items.length ? items[0].dataIndex : 0;
          const d = days[i];
          const lines = [`${d.day}: ${d.converted} of ${d.entered} converted (${d.entered ? d.conversion : 0}%)`];
          const before = previous && previous[i];
          if (before) lines.push(`${before.day}: ${before.converted} of ${before.entered}`);
          return lines.map(escapeText).join('<br>');
        },
      },
      xAxis: {
        type: 'category',
        data: days.map((d) => d.day),
        axisLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, hideOverlap: true, fontSize: narrow ? 10 : 12, formatter: shortBucket },
      },
      yAxis: [
        {
          type: 'value',
          min: 0,
          max: 100,
          splitLine: { lineStyle: { color: GRID_COLOR } },
          axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12, formatter: '{value}%' },
        },
        {
          type: 'value',
          minInterval: 1,
          splitLine: { show: false },
          axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 11 },
        },
      ],
      series,
    },
    true,
  );
}

/** Text for a tooltip, which ECharts renders as HTML: a step's path or a selector may hold markup. */
export function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
