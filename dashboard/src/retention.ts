/**
 * Retention page: draws the retention curve from the page's JSON data island (the average row of the grid the
 * server rendered, from the same query as GET /api/v1/projects/{id}/retention), and keeps the cohort form's
 * text field named after the condition chosen (start_page or start_event, return_page or return_event).
 *
 * The grid, its colours and every link are server-rendered: the page works without this script, minus the chart.
 */
import './analytics.css';
import './retention.css';
import { markBusyWhileLeaving } from './busy';
import { readDataIsland, svgChart } from './charts';
import { drawPercentLines, PercentSeries } from './curves';

interface Island {
  labels: string[];
  series: PercentSeries[];
}

function setUpConditions(root: HTMLElement): void {
  for (const box of Array.from(root.querySelectorAll<HTMLElement>('[data-cond]'))) {
    const prefix = box.dataset.cond || '';
    const kind = box.querySelector<HTMLSelectElement>('[data-cond-kind]');
    const value = box.querySelector<HTMLInputElement>('[data-cond-value]');
    if (!kind || !value) continue;
    const apply = (): void => {
      const chosen = kind.value === 'event' ? 'event' : kind.value === 'page' ? 'page' : '';
      value.hidden = chosen === '';
      // "Any" sends no condition at all; a hidden field would still be sent, so it is switched off.
      value.disabled = chosen === '';
      value.name = `${prefix}_${chosen || 'page'}`;
      value.placeholder = chosen === 'event' ? 'signup' : '/pricing or /blog/*';
      value.required = chosen !== '';
    };
    kind.addEventListener('change', () => {
      apply();
      if (!value.hidden) value.focus();
    });
    apply();
  }
}

function setUp(root: HTMLElement): void {
  setUpConditions(root);
  markBusyWhileLeaving(root);
  const island = readDataIsland<Island>('hm-retention-data', root);
  const chartEl = root.querySelector<HTMLElement>('#hm-rt-chart');
  if (!island || !chartEl) return; // a 400 page: nothing to draw
  drawPercentLines(svgChart(chartEl), island.labels, island.series);
}

const root = document.getElementById('hm-retention');
if (root) setUp(root);
