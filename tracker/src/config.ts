/** Reads the tracker's options from the data- attributes of its own <script> tag. */

export interface Config {
  /** Full endpoint URL, key included: https://host/api/v1/batch?key=… */
  endpoint: string;
  /** No localStorage/cookies: anonymous id per page load, session id in sessionStorage. */
  cookieless: boolean;
  /** rrweb recording on (data-no-record turns it off). */
  record: boolean;
  /** Honour DNT / Global Privacy Control (default on). */
  respectDnt: boolean;
  /** Mask every text node in recordings and click texts. */
  maskText: boolean;
  /** Query keys whose values are kept in URLs (besides utm_*): data-allow-query="ref,page". */
  allowQuery: string[];
}

/** Boolean attribute: present and not "false"/"0"/"no"/"off". */
function flag(el: Element | null, name: string, dflt: boolean): boolean {
  const v = el && el.getAttribute('data-' + name);
  return v === null || v === undefined ? dflt : !/^(false|0|no|off)$/i.test(v);
}

export function readConfig(): Config {
  const el = (document.currentScript as HTMLScriptElement | null) || document.querySelector<HTMLScriptElement>('script[data-key]');
  const key = (el && el.getAttribute('data-key')) || '';
  // data-api may be a full endpoint URL or just an origin; the default is the origin serving hm.js.
  const api = el && el.getAttribute('data-api');
  const url = new URL(api || (el && el.src) || '/', location.href);
  if (!api) url.search = url.hash = '';
  if (!api || url.pathname === '/') url.pathname = '/api/v1/batch';
  if (key && !url.searchParams.has('key')) url.searchParams.set('key', key);
  return {
    endpoint: url.href,
    cookieless: flag(el, 'cookieless', false),
    record: !flag(el, 'no-record', false),
    respectDnt: flag(el, 'respect-dnt', true),
    maskText: flag(el, 'mask-text', false),
    allowQuery: ((el && el.getAttribute('data-allow-query')) || '').split(',').map((k) => k.trim()).filter((k) => k),
  };
}

/** True when the browser asks not to be tracked (DNT or Global Privacy Control). */
export function dntRequested(): boolean {
  const n = navigator as Navigator & { globalPrivacyControl?: boolean };
  const w = window as unknown as { doNotTrack?: string };
  return n.doNotTrack === '1' || n.doNotTrack === 'yes' || w.doNotTrack === '1' || n.globalPrivacyControl === true;
}
