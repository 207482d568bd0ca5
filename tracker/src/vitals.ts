/**
 * The web vitals feature (hm-vitals.js, loaded when the project records web vitals): the page load's LCP,
 * INP, CLS, FCP and TTFB measured by the `web-vitals` package, sent once per page as the custom event
 * `$web_vitals` {lcp, inp, cls, fcp, ttfb, url} when the page is first hidden or left (when LCP, INP and CLS
 * are final). A metric the page never produced (INP without an interaction) is null. Times in ms.
 */
import { onCLS, onFCP, onINP, onLCP, onTTFB, type Metric } from 'web-vitals';
import { guard, host } from './redact';

const EVENT_NAME = '$web_vitals';

const values: Record<string, number | null> = { lcp: null, inp: null, cls: null, fcp: null, ttfb: null };
let sent = false;

const keep = guard((metric: Metric) => {
  // CLS is a unitless score: 4 decimals; the others are milliseconds.
  values[metric.name.toLowerCase()] = metric.name === 'CLS' ? Math.round(metric.value * 1e4) / 1e4 : Math.round(metric.value);
});

const send = guard(() => {
  const h = host();
  if (sent || !h) return;
  sent = true;
  h.track(EVENT_NAME, { ...values, url: h.cleanUrl(location.href) });
  h.flush(); // the core flushed when the page was hidden, before this listener ran
});

function install(): void {
  const w = window as unknown as { __hmVitals?: boolean };
  if (w.__hmVitals || !host()) return; // loaded twice, or without the tracker
  w.__hmVitals = true;
  for (const on of [onCLS, onFCP, onINP, onLCP, onTTFB]) on(keep, { reportAllChanges: true });
  // After web-vitals' own listeners (added just above), which settle the final values at this moment.
  addEventListener('visibilitychange', guard(() => document.visibilityState === 'hidden' && send()));
  addEventListener('pagehide', send);
}

guard(install)();
