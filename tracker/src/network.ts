/**
 * The network feature (hm-network.js, loaded when the project records the network): each fetch and XHR the
 * page makes becomes an `hm-network` custom event of the recording, when it ends: method, URL (query values
 * masked as page URLs are, typed values scrubbed), status, duration, and the request and response sizes
 * when known without reading a body (the body's own size, Content-Length). Never bodies or headers, never
 * the tracker's own requests to Hitmetrix. The page's request goes out and settles exactly as it would.
 */
import { budget, clip, guard, host, redact, watchFields } from './redact';

const TAG = 'hm-network';
const MAX_URL_CHARS = 2048;
const MAX_METHOD_CHARS = 16;
const MAX_ENTRIES_PER_MINUTE = 300;

interface NetworkEntry {
  kind: 'fetch' | 'xhr';
  method: string;
  url: string;
  /** HTTP status; 0 when there was none (network error, abort, or an opaque no-cors answer). */
  status: number;
  duration_ms: number;
  request_bytes?: number;
  response_bytes?: number;
  /** No answer: a network error, refused by CORS, aborted or timed out. */
  failed?: boolean;
}

/** A request under way: what is known when it starts. */
interface Started {
  kind: NetworkEntry['kind'];
  method: string;
  url: string;
  startMs: number;
  request_bytes?: number;
}

const limit = budget(MAX_ENTRIES_PER_MINUTE);

/** A request to remember, or undefined for the tracker's own (and when there is no tracker). */
function start(kind: Started['kind'], method: unknown, url: unknown, body: unknown): Started | undefined {
  const h = host();
  const absolute = new URL(String(url), location.href).href;
  if (!h || absolute.indexOf(h.api) === 0) return undefined;
  return {
    kind,
    method: clip(String(method || 'GET').toUpperCase(), MAX_METHOD_CHARS),
    url: absolute,
    startMs: performance.now(),
    request_bytes: sizeOf(body),
  };
}

/** A body's size in bytes when it is known without reading it (not for forms and streams). */
function sizeOf(body: unknown): number | undefined {
  if (body === null || body === undefined) return undefined;
  if (typeof body === 'string') return new TextEncoder().encode(body).length;
  if (body instanceof URLSearchParams) return new TextEncoder().encode(body.toString()).length;
  if (body instanceof Blob) return body.size;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  return undefined;
}

function contentLength(value: string | null): number | undefined {
  return value && /^\d+$/.test(value) ? +value : undefined;
}

function finish(started: Started, status: number, responseBytes: number | undefined, failed: boolean): void {
  const h = host();
  if (!h || !limit.take()) return;
  const entry: NetworkEntry = {
    kind: started.kind,
    method: started.method,
    url: clip(redact(h.cleanUrl(started.url)), MAX_URL_CHARS),
    status,
    duration_ms: Math.round(performance.now() - started.startMs),
  };
  if (started.request_bytes !== undefined) entry.request_bytes = started.request_bytes;
  if (responseBytes !== undefined) entry.response_bytes = responseBytes;
  if (failed) entry.failed = true;
  h.custom(TAG, entry);
}

function wrapFetch(): void {
  const original = window.fetch;
  if (typeof original !== 'function') return;
  window.fetch = function (this: unknown, input: RequestInfo | URL, init?: RequestInit) {
    let started: Started | undefined;
    guard(() => {
      const request = input instanceof Request ? input : null;
      const method = (init && init.method) || (request ? request.method : 'GET');
      started = start('fetch', method, request ? request.url : input, init && init.body);
    })();
    // eslint-disable-next-line prefer-rest-params
    const answer = original.apply(this, arguments as unknown as [RequestInfo | URL, RequestInit?]);
    if (started) {
      const s = started;
      answer.then(
        guard((response: Response) =>
          finish(s, response.status, contentLength(response.headers.get('content-length')), false),
        ),
        guard(() => finish(s, 0, undefined, true)),
      );
    }
    return answer;
  } as typeof fetch;
}

function wrapXhr(): void {
  const proto = XMLHttpRequest.prototype;
  const open = proto.open;
  const send = proto.send;
  const opened = new WeakMap<XMLHttpRequest, [unknown, unknown]>();
  proto.open = function (this: XMLHttpRequest, method: string, url: string | URL) {
    guard(() => opened.set(this, [method, url]))();
    // eslint-disable-next-line prefer-rest-params
    return open.apply(this, arguments as unknown as Parameters<typeof open>);
  } as typeof open;
  proto.send = function (this: XMLHttpRequest, body?: Document | XMLHttpRequestBodyInit | null) {
    guard(() => {
      const target = opened.get(this);
      const started = target && start('xhr', target[0], target[1], body);
      if (!started) return;
      const xhr = this;
      xhr.addEventListener(
        'loadend',
        guard(() => {
          const failed = xhr.status === 0;
          finish(started, xhr.status, failed ? undefined : contentLength(xhr.getResponseHeader('content-length')), failed);
        }),
      );
    })();
    return send.call(this, body);
  };
}

function install(): void {
  const w = window as unknown as { __hmNetwork?: boolean };
  if (w.__hmNetwork || !host()) return; // loaded twice, or without the tracker
  w.__hmNetwork = true;
  watchFields();
  wrapFetch();
  wrapXhr();
}

guard(install)();
