/**
 * Optional features (console, network, web vitals, frustration signals) live in chunks beside hm.js
 * (hm-console.js …), loaded only when the project turns them on (frustration signals: unless it turns them
 * off): the core asks GET /api/v1/tracker-config?key= and hands the chunks
 * a small host (window.hitmetrix._host) to reach the recording, analytics events and URL cleaning.
 */
import { record } from '@rrweb/record';
import { clickWatchers, type ClickWatcher } from './autocapture';
import { emit } from './events';
import { cleanUrl } from './privacy';
import { flush } from './queue';
import { safe, state } from './util';

/** What a chunk may use of the core (see redact.ts, which the chunks share). */
export interface FeatureHost {
  /** An rrweb custom event in the recording: it plays at its moment in the replay. */
  custom(tag: string, payload: object): void;
  /** An analytics custom event that is not user activity. */
  track(name: string, props: object): void;
  /** Send what is buffered now, by beacon: the page is being hidden. */
  flush(): void;
  cleanUrl(url: string): string;
  /** Where Hitmetrix answers (…/api/v1/): the tracker's own requests, which are never recorded. */
  api: string;
  /** Called with each click before it is sent (autocapture.ts ClickWatcher). */
  clicks: ClickWatcher[];
}

let loaded = false;

/** Load the chunks the project turned on; console and network only go into a recording. */
export function loadFeatures(endpoint: string, recording: boolean): void {
  const i = endpoint.indexOf('/api/v1/batch');
  if (loaded || i < 0) return;
  loaded = true;
  const base = endpoint.slice(0, i);
  const host: FeatureHost = {
    custom: safe((tag: string, payload: object) => state.on && record.addCustomEvent(tag, payload)),
    track: (name, props) => emit('custom', { name }, props, true),
    flush: () => flush(true),
    cleanUrl,
    api: base + '/api/v1/',
    clicks: clickWatchers,
  };
  (window as unknown as { hitmetrix: { _host: FeatureHost } }).hitmetrix._host = host;
  // The endpoint's own query (?key=…) names the project.
  fetch(host.api + 'tracker-config' + endpoint.slice(i + 13), { credentials: 'omit' })
    .then((answer) => answer.json())
    .then(
      safe((on: Record<string, unknown>) => {
        for (const name of recording ? ['console', 'network', 'vitals', 'frustration'] : ['vitals', 'frustration']) {
          // Frustration signals are on unless the answer says `false` (no project switch turns them off yet).
          if ((name == 'frustration' ? on[name] === false : on[name] !== true) || !state.on) continue;
          const script = document.createElement('script');
          script.src = base + '/static/hm-' + name + '.js';
          document.head.appendChild(script);
        }
      }),
      () => {}, // no answer: the core works without them
    );
}
