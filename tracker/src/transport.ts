/**
 * Delivers batches to POST /api/v1/batch: one fetch at a time while the page lives, every queued
 * batch by sendBeacon when it is hidden, and a bounded in-memory retry queue with back-off.
 * Batches are sent as built (same batch_id and event ids); only `sent_at` is new per attempt.
 */
import { later, now, safe, state } from './util';

export interface Chunk {
  seq: number;
  first_ts: number;
  last_ts: number;
  count: number;
  data: string;
}

export interface Batch {
  /** Made once per batch: a retry resends it, so the server stores the batch once. */
  batch_id: string;
  session_id: string;
  anonymous_id: string;
  user_id?: string;
  sent_at?: number;
  events: object[];
  recording: Chunk[];
}

interface Item {
  batch: Batch;
  bytes: number;
}

/** Bodies at or under this size may use keepalive/sendBeacon (browsers allow 64 KiB in flight). */
export const BEACON_MAX_BYTES = 60000;
const MAX_QUEUED_BATCHES = 200;
const MAX_QUEUED_BYTES = 5 * 1024 * 1024;
const MAX_BACKOFF_MS = 60000;

let endpoint = '';
const queue: Item[] = [];
let queuedBytes = 0;
let busy = false;
let backoffMs = 0;
let retryAtMs = 0;

export const setEndpoint = (url: string): void => {
  endpoint = url;
};

/** Add batches to the queue; the oldest are dropped past 200 batches or 5 MB. */
export function enqueue(batch: Batch, bytes: number, front?: boolean): void {
  if (!state.on) return;
  const item = { batch, bytes };
  if (front) queue.unshift(item);
  else queue.push(item);
  queuedBytes += bytes;
  while (queue.length > MAX_QUEUED_BATCHES || queuedBytes > MAX_QUEUED_BYTES) take();
}

function take(): Item {
  const item = queue.shift() as Item;
  queuedBytes -= item.bytes;
  return item;
}

/** Drop everything queued (opt-out). */
export function clear(): void {
  queue.length = queuedBytes = 0;
}

const toBlob = (batch: Batch): Blob => {
  batch.sent_at = now();
  return new Blob([JSON.stringify(batch)], { type: 'text/plain' });
};

/**
 * POST one batch with fetch. text/plain keeps it a CORS "simple" request (no preflight).
 * Resolves when the outcome is handled: delivered or hopeless (4xx) → dropped; network error,
 * 429 or 5xx → back to the front of the queue with back-off.
 */
function post(item: Item, blob: Blob): Promise<void> {
  let sending: Promise<Response>;
  try {
    sending = fetch(endpoint, {
      method: 'POST',
      body: blob,
      credentials: 'omit',
      keepalive: blob.size < BEACON_MAX_BYTES,
    });
  } catch (e) {
    sending = Promise.reject(e);
  }
  return sending.then(
    safe((res: Response) => {
      if (res.status < 500 && res.status !== 429) backoffMs = 0;
      else retry(item, res.headers.get('Retry-After'));
    }),
    safe(() => retry(item, null)),
  );
}

function retry(item: Item, retryAfter: string | null): void {
  backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2 || 1000);
  let waitMs = backoffMs * (0.5 + Math.random() / 2);
  if (retryAfter) {
    const askedMs = +retryAfter * 1000 || Date.parse(retryAfter) - now();
    if (askedMs > 0) waitMs = Math.min(askedMs, 3600000);
  }
  retryAtMs = now() + waitMs;
  enqueue(item.batch, item.bytes, true);
  // The timer, not the wall clock, ends the wait (Date.now can lag a timer by a fraction of a ms).
  later(() => {
    retryAtMs = 0;
    pump();
  }, waitMs);
}

/** Send the next queued batch unless one is in flight or we are backing off. */
export function pump(): void {
  if (busy || !state.on || !queue.length || now() < retryAtMs) return;
  const item = take();
  busy = true;
  post(item, toBlob(item.batch)).then(
    safe(() => {
      busy = false;
      pump();
    }),
  );
}

/** Page is being hidden or left: hand every queued batch to sendBeacon (fetch keepalive if refused). */
export function drain(): void {
  while (state.on && queue.length) {
    const item = take();
    const blob = toBlob(item.batch);
    let sent = false;
    try {
      sent = blob.size <= BEACON_MAX_BYTES && navigator.sendBeacon(endpoint, blob);
    } catch (e) {
      /* no sendBeacon, or refused: fetch below */
    }
    if (!sent) post(item, blob);
  }
}
