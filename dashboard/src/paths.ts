/**
 * Paths page: draws the Sankey from the page's JSON data island (the same answer as GET
 * /api/v1/projects/{id}/paths, embedded by the server) and opens the sessions of a link or a page.
 *
 * A click on a link of the diagram (or on a row's ▸ in the table below it) fetches this view's page with that
 * edge added (`edge=…`, which the server answers with the edge's sessions, each linking to its replay), swaps the
 * sessions panel in and pushes the URL, so an opened link is a shareable view too. A click on a page (a node)
 * opens its link when one leads to it, or lists the links through it to choose from. The page works without this
 * script: the table's links load the same view.
 */
import './analytics.css';
import './paths.css';
import { markBusyWhileLeaving } from './busy';
import { readDataIsland, setLoading, svgChart } from './charts';
import { drawSankey, edgePoint, isOther, nodePoint, PathEdge, PathNode, sankeyHeight } from './sankey';
import { openLinksInPanel, sessionsPanel } from './sessions_panel';
import type { echarts } from './charts';

interface Island {
  mode: 'start' | 'end';
  nodes: PathNode[];
  edges: PathEdge[];
  edge_url: string;
}

/** What tests (and curious developers) can read from the page. */
export interface HmPaths {
  opened: number;
  failures: number;
  /** A point on a link, in the window's coordinates (tests click there as a person would). */
  edgePoint(edgeId: string): { x: number; y: number } | null;
  /** The middle of a page's bar, in the window's coordinates. */
  nodePoint(nodeId: string): { x: number; y: number } | null;
}

let chart: echarts.ECharts | null = null;
let drawnMode: 'start' | 'end' = 'start';
const state: HmPaths = {
  opened: 0,
  failures: 0,
  edgePoint(edgeId) {
    const el = document.getElementById('hm-pa-chart');
    if (!chart || !el) return null;
    return inWindow(el, edgePoint(chart, edgeId, drawnMode));
  },
  nodePoint(nodeId) {
    const el = document.getElementById('hm-pa-chart');
    if (!chart || !el) return null;
    return inWindow(el, nodePoint(chart, nodeId));
  },
};
(window as unknown as { hmPaths: HmPaths }).hmPaths = state;

function inWindow(el: HTMLElement, point: { x: number; y: number } | null): { x: number; y: number } | null {
  if (!point) return null;
  const box = el.getBoundingClientRect();
  return { x: box.left + point.x, y: box.top + point.y };
}

function panel(): HTMLElement | null {
  return document.getElementById('hm-pa-sessions');
}

/** Fetches the view at a URL and swaps its sessions panel in; a full page load on anything unexpected. */
const openView = sessionsPanel({ panelId: 'hm-pa-sessions', counts: state, historyState: { hmPaths: true } });

function edgeUrl(island: Island, edgeId: string): string {
  return island.edge_url.replace('edge=EDGE', 'edge=' + encodeURIComponent(edgeId)) + '#hm-pa-sessions';
}

/** The panel says why a link into "other" has no list (it joins many pages), without asking the server. */
function explainOther(): void {
  const current = panel();
  if (!current) return;
  current.replaceChildren();
  const p = document.createElement('p');
  p.className = 'muted';
  p.textContent = '“other” joins the pages of the lighter links of a step: raise “Links per step” to see them.';
  current.appendChild(p);
}

/** A page of the diagram was clicked: its one link (towards the start or end page), or a choice of them. */
function openNode(island: Island, nodeId: string): void {
  const through = island.edges.filter((e) => (e.source === nodeId || e.target === nodeId) && !isOther(e.id));
  // The link that reached the page from the anchor's side: its step is the node's step - 1.
  const step = Number(nodeId.split(':', 1)[0]);
  const reaching = through.filter((e) => Number(e.id.split(':', 1)[0]) === step - 1);
  if (reaching.length === 1) {
    void openView(edgeUrl(island, reaching[0].id), true);
    return;
  }
  const current = panel();
  if (!current) return;
  const byId: Record<string, PathNode> = {};
  for (const n of island.nodes) byId[n.id] = n;
  current.replaceChildren();
  const title = document.createElement('h2');
  title.textContent = `Links through ${byId[nodeId] ? byId[nodeId].page : nodeId}`;
  current.appendChild(title);
  if (!through.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'No link of this page can list its sessions.';
    current.appendChild(p);
    return;
  }
  const list = document.createElement('ul');
  list.className = 'hm-pa-choices';
  for (const e of through.sort((a, b) => b.sessions - a.sessions)) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = edgeUrl(island, e.id);
    a.dataset.edgeLink = '';
    const from = byId[e.source] ? byId[e.source].page : e.source;
    const to = byId[e.target] ? byId[e.target].page : e.target;
    a.textContent = `${from} → ${to}`;
    li.append(a, ` ${e.sessions} sessions`);
    list.appendChild(li);
  }
  current.appendChild(list);
}

function setUpForm(root: HTMLElement): void {
  const mode = root.querySelector<HTMLSelectElement>('#hm-pa-mode');
  const anchor = root.querySelector<HTMLInputElement>('#hm-pa-anchor');
  if (mode && anchor) mode.addEventListener('change', () => (anchor.name = mode.value === 'end' ? 'end' : 'start'));
  const rules = root.querySelector<HTMLOListElement>('#hm-pa-rule-list');
  const add = root.querySelector<HTMLButtonElement>('#hm-pa-add-rule');
  if (rules && add) {
    const max = Number(rules.dataset.max || '10');
    const sync = (): void => {
      add.disabled = rules.children.length >= max;
    };
    add.addEventListener('click', () => {
      const last = rules.lastElementChild;
      if (!last || rules.children.length >= max) return;
      const copy = last.cloneNode(true) as HTMLElement;
      const input = copy.querySelector<HTMLInputElement>('input');
      if (input) input.value = '';
      rules.appendChild(copy);
      if (input) input.focus();
      sync();
    });
    rules.addEventListener('click', (event) => {
      const button = (event.target as Element).closest('[data-rule-remove]');
      const row = button && button.closest('li');
      if (!row) return;
      if (rules.children.length > 1) row.remove();
      else {
        const input = row.querySelector<HTMLInputElement>('input');
        if (input) input.value = '';
      }
      sync();
    });
    sync();
  }
  markBusyWhileLeaving(root);
}

function setUp(root: HTMLElement): void {
  setUpForm(root);
  const island = readDataIsland<Island>('hm-paths-data', root);
  const chartEl = root.querySelector<HTMLElement>('#hm-pa-chart');
  if (!island) return; // a 400 page: nothing to draw
  openLinksInPanel(root, 'a[data-edge-link], a[data-close]', openView);
  if (!chartEl) return; // no walks in this view
  // Height from the fullest step; the width grows with the steps, and a phone scrolls it sideways.
  chartEl.style.height = `${sankeyHeight(island.nodes)}px`;
  const steps = Number(chartEl.dataset.steps || '4');
  chartEl.style.minWidth = `${Math.min(1200, (steps + 1) * 150)}px`;
  setLoading(chartEl, true);
  chart = svgChart(chartEl);
  drawnMode = island.mode;
  drawSankey(chart, island.nodes, island.edges, island.mode);
  // Walks to an end page read right to left: a phone that scrolls the diagram starts at the end page.
  const scroller = chartEl.parentElement;
  if (island.mode === 'end' && scroller) scroller.scrollLeft = scroller.scrollWidth;
  chart.on('click', (params) => {
    const p = params as unknown as { dataType?: string; data: { name?: string; edgeId?: string } };
    if (p.dataType === 'edge' && p.data.edgeId) {
      if (isOther(p.data.edgeId)) explainOther();
      else void openView(edgeUrl(island, p.data.edgeId), true);
    } else if (p.dataType === 'node' && p.data.name) {
      openNode(island, p.data.name);
    }
  });
}

window.addEventListener('popstate', () => {
  void openView(window.location.href, false);
});

const root = document.getElementById('hm-paths');
if (root) setUp(root);
