/**
 * The paths Sankey (ECharts' SankeyChart, tree-shaken, SVG): a column per step, nodes in the answer's order (the
 * heaviest first: no layout iterations, so the same answer always draws the same), links coloured by their
 * source, "other" in grey. Each link carries its edge id, which the page asks the sessions of.
 */
import { SankeyChart } from 'echarts/charts';
import { TooltipComponent } from 'echarts/components';
import { echarts } from './charts';

echarts.use([SankeyChart, TooltipComponent]);

export interface PathNode {
  id: string;
  step: number;
  page: string;
  sessions: number;
}

export interface PathEdge {
  id: string;
  source: string;
  target: string;
  sessions: number;
}

const PALETTE = ['#4f46e5', '#0891b2', '#16a34a', '#ca8a04', '#db2777', '#7c3aed', '#ea580c', '#0d9488'];
const OTHER_COLOR = '#9ca3af';
const LABEL_CHARS = 26;
const NODE_GAP_PX = 10;
const PX_PER_NODE = 42;
const MIN_HEIGHT_PX = 260;

export function isOther(id: string): boolean {
  return /:other$/.test(id);
}

function shortPage(page: string, chars: number): string {
  return page.length > chars ? page.slice(0, chars - 1) + '…' : page;
}

/** The chart's height for these nodes: the fullest step decides. */
export function sankeyHeight(nodes: PathNode[]): number {
  const perStep: Record<number, number> = {};
  for (const n of nodes) perStep[n.step] = (perStep[n.step] || 0) + 1;
  const most = Math.max(1, ...Object.values(perStep));
  return Math.max(MIN_HEIGHT_PX, most * PX_PER_NODE);
}

/** The nodes with each step's "other" last (the answer puts the heaviest first, and "other" is often that). */
function ordered(nodes: PathNode[]): PathNode[] {
  return nodes.filter((n) => n.page !== 'other').concat(nodes.filter((n) => n.page === 'other'));
}

export function drawSankey(chart: echarts.ECharts, nodes: PathNode[], edges: PathEdge[], mode: 'start' | 'end'): void {
  const colors: Record<string, string> = {};
  let next = 0;
  for (const n of nodes) {
    if (n.page === 'other') colors[n.id] = OTHER_COLOR;
    else if (!(n.page in colors)) colors[n.page] = PALETTE[next++ % PALETTE.length];
  }
  const colorOf = (n: PathNode): string => (n.page === 'other' ? OTHER_COLOR : colors[n.page]);
  const byId: Record<string, PathNode> = {};
  for (const n of nodes) byId[n.id] = n;
  const labelChars = chart.getWidth() < 700 ? 16 : LABEL_CHARS;
  chart.setOption(
    {
      animation: false,
      tooltip: {
        trigger: 'item',
        confine: true,
        formatter: (p: { dataType?: string; data: { page?: string; edgeId?: string; value: number; from?: string; to?: string } }) => {
          const text = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
          if (p.dataType === 'edge') {
            const hint = p.data.edgeId && isOther(p.data.edgeId) ? '' : '<br><i>click: its sessions</i>';
            return `${text(p.data.from || '')} → ${text(p.data.to || '')}<br><b>${p.data.value}</b> sessions${hint}`;
          }
          return `${text(p.data.page || '')}<br><b>${p.data.value}</b> sessions`;
        },
      },
      series: [
        {
          type: 'sankey',
          // Room for the labels beside the last column (start mode) or the first (end mode).
          left: 8 + (mode === 'end' ? labelChars * 6 : 0),
          right: 8 + (mode === 'start' ? labelChars * 6 : 0),
          top: 8,
          bottom: 8,
          nodeWidth: 12,
          nodeGap: NODE_GAP_PX,
          nodeAlign: mode === 'start' ? 'left' : 'right',
          layoutIterations: 0,
          draggable: false,
          emphasis: { focus: 'adjacency' },
          label: {
            color: '#1d2330',
            fontSize: 11,
            position: mode === 'start' ? 'right' : 'left',
            formatter: (p: { data: { page: string } }) => shortPage(p.data.page, labelChars),
          },
          lineStyle: { color: 'source', opacity: 0.35, curveness: 0.5 },
          data: ordered(nodes).map((n) => ({
            name: n.id,
            page: n.page,
            value: n.sessions,
            itemStyle: { color: colorOf(n), borderWidth: 0 },
          })),
          links: edges.map((e) => ({
            source: e.source,
            target: e.target,
            value: e.sessions,
            edgeId: e.id,
            from: byId[e.source] ? byId[e.source].page : '',
            to: byId[e.target] ? byId[e.target].page : '',
          })),
        },
      ],
    },
    true,
  );
}

interface SeriesInternals {
  layoutInfo?: { x: number; y: number };
  getData(type: 'node'): { indexOfName(name: string): number; graph: { getNodeByIndex(i: number): { getLayout(): Box } } };
  getData(type: 'edge'): {
    count(): number;
    getRawDataItem(i: number): { edgeId?: string };
    getItemLayout(i: number): { dy: number } | null;
    graph: { getEdgeByIndex(i: number): { node1: { getLayout(): Box }; node2: { getLayout(): Box }; getLayout(): { sy: number; ty: number; dy: number } } };
  };
}
interface Box {
  x: number;
  y: number;
  dx: number;
  dy: number;
}

/**
 * A point on a link, relative to the chart's container: the middle of its band just before it reaches its target
 * page (start mode) or just after it leaves its source (end mode): away from the pages' labels, and where no other
 * link can cover it (the links of a page meet it stacked, side by side). Tests click there as a person would.
 * Null when the link is not drawn.
 */
export function edgePoint(chart: echarts.ECharts, edgeId: string, mode: 'start' | 'end'): { x: number; y: number } | null {
  const model = (chart as unknown as { getModel(): { getSeriesByIndex(i: number): SeriesInternals } }).getModel();
  const series = model.getSeriesByIndex(0);
  const data = series.getData('edge');
  const origin = series.layoutInfo || { x: 0, y: 0 };
  for (let i = 0; i < data.count(); i++) {
    if (data.getRawDataItem(i).edgeId !== edgeId) continue;
    const edge = data.graph.getEdgeByIndex(i);
    const a = edge.node1.getLayout();
    const b = edge.node2.getLayout();
    const e = edge.getLayout();
    const x1 = a.x + a.dx;
    const x2 = b.x;
    const inset = Math.min(6, (x2 - x1) / 4);
    const band = Math.max(1, e.dy) / 2;
    return mode === 'start'
      ? { x: origin.x + x2 - inset, y: origin.y + b.y + e.ty + band }
      : { x: origin.x + x1 + inset, y: origin.y + a.y + e.sy + band };
  }
  return null;
}

/** The middle of a page's bar, relative to the chart's container; null when the page is not drawn. */
export function nodePoint(chart: echarts.ECharts, nodeId: string): { x: number; y: number } | null {
  const model = (chart as unknown as { getModel(): { getSeriesByIndex(i: number): SeriesInternals } }).getModel();
  const series = model.getSeriesByIndex(0);
  const data = series.getData('node');
  const index = data.indexOfName(nodeId);
  if (index < 0) return null;
  const box = data.graph.getNodeByIndex(index).getLayout();
  const origin = series.layoutInfo || { x: 0, y: 0 };
  return { x: origin.x + box.x + box.dx / 2, y: origin.y + box.y + box.dy / 2 };
}
