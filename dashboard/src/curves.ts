/**
 * A percentage-over-periods line chart (the retention curve): one line per range, the y axis from 0 to 100 %.
 * Kept out of charts.ts so pages that draw no curve do not bundle the legend.
 */
import { LegendComponent } from 'echarts/components';
import { ACCENT, echarts } from './charts';

echarts.use([LegendComponent]);

const AXIS_COLOR = '#6b7280';
const GRID_COLOR = '#e5e7eb';
const PREVIOUS_COLOR = '#9ca3af';
const NARROW_PX = 480;

export interface PercentSeries {
  name: string;
  /** null: a period no cohort has reached yet (drawn as a gap, not as 0 %). */
  values: (number | null)[];
}

export function drawPercentLines(chart: echarts.ECharts, labels: string[], series: PercentSeries[]): void {
  const narrow = chart.getWidth() < NARROW_PX;
  chart.setOption(
    {
      animation: false,
      grid: { left: narrow ? 40 : 52, right: 16, top: series.length > 1 ? 36 : 16, bottom: narrow ? 40 : 32 },
      legend: series.length > 1 ? { top: 0, textStyle: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12 } } : undefined,
      tooltip: {
        trigger: 'axis',
        confine: true,
        valueFormatter: (v: unknown) => (typeof v === 'number' ? `${v.toFixed(1)} %` : '—'),
      },
      xAxis: {
        type: 'category',
        data: labels,
        boundaryGap: false,
        axisLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, hideOverlap: true, fontSize: narrow ? 10 : 12 },
      },
      yAxis: {
        type: 'value',
        min: 0,
        max: 100,
        splitLine: { lineStyle: { color: GRID_COLOR } },
        axisLabel: { color: AXIS_COLOR, fontSize: narrow ? 10 : 12, formatter: '{value}%' },
      },
      series: series.map((s, i) => ({
        name: s.name,
        type: 'line',
        data: s.values.map((v) => (v === null ? '-' : v)),
        showSymbol: labels.length <= 31,
        symbolSize: 6,
        lineStyle: { width: 2, type: i === 0 ? 'solid' : 'dashed' },
        areaStyle: i === 0 ? { opacity: 0.08 } : undefined,
        color: i === 0 ? ACCENT : PREVIOUS_COLOR,
      })),
    },
    true,
  );
}
