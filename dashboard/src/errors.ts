/**
 * Errors pages (the groups, and one group): draws the count of errors per bucket from the page's JSON data island
 * (the same query as GET /api/v1/projects/{id}/errors or …/errors/{group}). The tables, their sparklines (inline
 * SVG), the stack and the replay links are server-rendered: the pages work without this script, minus the chart.
 */
import './analytics.css';
import './errors.css';
import { drawLines, LineSeries, readDataIsland, svgChart } from './charts';

interface Island {
  labels: string[];
  series: LineSeries[];
}

function setUp(root: HTMLElement): void {
  for (const form of Array.from(root.querySelectorAll<HTMLFormElement>('form'))) {
    form.addEventListener('submit', () => {
      root.classList.add('is-loading');
      root.setAttribute('aria-busy', 'true');
    });
  }
  const island = readDataIsland<Island>('hm-errors-data', root);
  const chartEl = root.querySelector<HTMLElement>('#hm-er-chart');
  if (!island || !chartEl) return; // a 400 or 404 page: nothing to draw
  drawLines(svgChart(chartEl), island.labels, island.series);
}

const root = document.getElementById('hm-errors');
if (root) setUp(root);
