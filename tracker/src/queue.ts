/**
 * Collects analytics events and recording chunks and cuts them into capture batches:
 * every 5 s, at 50 events or ~256 KB of raw recording, and on page hide (by beacon).
 * A batch is built once, with its own batch_id, and retried as built.
 */
import * as recorder from './recorder';
import { ids } from './session';
import { Batch, BEACON_MAX_BYTES, Chunk, drain, enqueue, pump } from './transport';
import { byteLength, later, randomId, state } from './util';

const FLUSH_INTERVAL_MS = 5000;
const FLUSH_AT_EVENTS = 50;
const FLUSH_AT_RECORDING_BYTES = 256 * 1024;
/** Room left under the beacon limit for the batch envelope (ids, sent_at, keys). */
const BATCH_TARGET_BYTES = BEACON_MAX_BYTES - 2000;
const MAX_EVENTS_PER_BATCH = 1000;
const MAX_CHUNKS_PER_BATCH = 50;

type Envelope = Pick<Batch, 'session_id' | 'anonymous_id' | 'user_id'>;

/** What one flush took: batched once its chunks are compressed, in flush order. */
interface Flushed {
  envelope: Envelope;
  events: object[];
  chunks: recorder.Sealed[];
}

let events: object[] = [];
let timer = 0;
const flushed: Flushed[] = [];

export function addEvent(event: object): void {
  events.push(event);
  schedule();
}

export function addRecording(e: recorder.RrwebEvent): void {
  recorder.add(e);
  // Send a full snapshot (type 2) right away, while the page surely lives: without it nothing
  // replays, and it is often too big for the beacon of a visitor who leaves within seconds.
  schedule(e.type === 2);
}

/** Flush in 5 s, or on the next tick when `soon` or a size threshold is reached. */
function schedule(soon?: boolean): void {
  if (soon || events.length >= FLUSH_AT_EVENTS || recorder.bufferedBytes >= FLUSH_AT_RECORDING_BYTES) {
    clearTimeout(timer);
    timer = later(flush, 0);
  } else if (!timer) {
    timer = later(flush, FLUSH_INTERVAL_MS);
  }
}

/** Drop buffered events and recording (opt-out). */
export function discard(): void {
  events = [];
  flushed.length = 0;
  recorder.stop();
}

/**
 * Take what is buffered, under the current session's ids, and batch it once its recording is
 * compressed. `beacon`: the page is being hidden or left, so send everything now by sendBeacon,
 * with the chunks still being compressed stored uncompressed.
 */
export function flush(beacon?: boolean): void {
  clearTimeout(timer);
  timer = 0;
  if (!state.on) return;
  const envelope: Envelope = { session_id: ids.sid, anonymous_id: ids.aid };
  if (ids.uid) envelope.user_id = ids.uid;
  flushed.push({ envelope, events, chunks: recorder.take(settle) });
  events = [];
  settle(beacon);
}

/** Batch the flushes that are ready, oldest first, and send. */
function settle(beacon?: boolean): void {
  for (let next; (next = flushed[0]); flushed.shift()) {
    if (beacon) next.chunks.forEach((s) => recorder.finish(s));
    if (next.chunks.some((s) => s.json !== undefined)) break;
    cut(next, beacon);
  }
  if (beacon) drain();
  else pump();
}

/**
 * Cut one flush into batches of at most ~58 KB (so any batch fits one beacon; a single
 * oversized chunk travels alone) and hand them to the transport.
 */
function cut(taken: Flushed, beacon?: boolean): void {
  // [event or chunk, its JSON size, is a chunk]
  const items = taken.events.map((e): [object, number, boolean?] => [e, byteLength(JSON.stringify(e))]);
  taken.chunks.forEach(({ chunk }) => items.push([chunk, chunk.data.length + 100, true]));
  let batch: Batch | undefined;
  let bytes = 0;
  // Browsers let only ~64 KB of beacons be in flight at unload: events travel in a batch of
  // their own, first, so that a long recording tail cannot crowd out the pageleave.
  const close = (): void => batch && enqueue(batch, bytes, beacon && !batch.recording.length);
  for (const [item, size, isChunk] of items) {
    if (
      !batch ||
      bytes + size > BATCH_TARGET_BYTES ||
      batch.events.length >= MAX_EVENTS_PER_BATCH ||
      batch.recording.length >= MAX_CHUNKS_PER_BATCH ||
      (beacon && isChunk && !batch.recording.length)
    ) {
      close();
      batch = { batch_id: randomId(), ...taken.envelope, events: [], recording: [] };
      bytes = 200;
    }
    if (isChunk) batch.recording.push(item as Chunk);
    else batch.events.push(item);
    bytes += size;
  }
  close();
}
