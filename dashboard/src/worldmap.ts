/**
 * A world map of countries coloured by a number (visitors), from world-atlas's 1:110m TopoJSON turned into
 * GeoJSON with topojson-client and registered with ECharts. Shapes are named by ISO alpha-2 code, which is
 * what the store keeps, so values join by code.
 */
import { MapChart } from 'echarts/charts';
import { TooltipComponent } from 'echarts/components';
import { feature } from 'topojson-client';
import type { GeometryCollection, Topology } from 'topojson-specification';
import countries110m from 'world-atlas/countries-110m.json';
import { echarts } from './charts';
import { ALPHA2_OF_NAME, ALPHA2_OF_NUMERIC } from './countries';

echarts.use([MapChart, TooltipComponent]);

const MAP_NAME = 'hm-world';
let registered = false;

function register(): void {
  if (registered) return;
  const topology = countries110m as unknown as Topology<{ countries: GeometryCollection<{ name: string }> }>;
  const collection = feature(topology, topology.objects.countries);
  for (const shape of collection.features) {
    const code = ALPHA2_OF_NUMERIC[Number(shape.id)] || ALPHA2_OF_NAME[shape.properties.name] || '';
    shape.properties = { ...shape.properties, name: code || shape.properties.name };
  }
  // Antarctica takes a fifth of the height and has no visitors.
  collection.features = collection.features.filter((shape) => shape.properties.name !== 'AQ');
  echarts.registerMap(MAP_NAME, collection as unknown as Parameters<typeof echarts.registerMap>[1]);
  registered = true;
}

/** "DE" → "Germany" in the browser's language, or the code when the browser has no names. */
export function countryName(code: string): string {
  type RegionNames = new (locales: string[], options: { type: string }) => { of(code: string): string };
  const Names = (Intl as unknown as { DisplayNames?: RegionNames }).DisplayNames;
  try {
    return (Names && new Names(['en'], { type: 'region' }).of(code)) || code;
  } catch (e) {
    return code;
  }
}

/** Draws the countries of `values` (code → visitors); a click on one with a value calls `onPick(code)`. */
export function drawWorld(
  chart: echarts.ECharts,
  values: Record<string, number>,
  onPick: (code: string) => void,
): void {
  register();
  const max = Math.max(1, ...Object.values(values));
  chart.setOption(
    {
      animation: false,
      tooltip: {
        trigger: 'item',
        confine: true,
        formatter: (p: { name: string; value: number }) =>
          `${escapeText(countryName(p.name))}: ${Number.isFinite(p.value) ? p.value : 0} visitors`,
      },
      series: [
        {
          type: 'map',
          map: MAP_NAME,
          roam: false,
          selectedMode: false,
          itemStyle: { areaColor: '#f3f4f6', borderColor: '#ffffff', borderWidth: 0.5 },
          emphasis: { label: { show: false }, itemStyle: { areaColor: '#a5b4fc' } },
          // Coloured here rather than with a visualMap component, which would add 30 kB to the bundle.
          data: Object.entries(values).map(([name, value]) => ({
            name,
            value,
            itemStyle: { areaColor: shade(value / max) },
          })),
        },
      ],
    },
    true,
  );
  chart.off('click');
  chart.on('click', (p) => {
    if (p.name && values[p.name] !== undefined) onPick(p.name);
  });
}

/** From a pale tint (few visitors) to the accent colour (the most), by square root so small counts show. */
function shade(share: number): string {
  const t = Math.sqrt(Math.max(0, Math.min(1, share)));
  const pale = [224, 231, 255];
  const accent = [79, 70, 229];
  return `rgb(${pale.map((p, i) => Math.round(p + (accent[i] - p) * t)).join(',')})`;
}

function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
