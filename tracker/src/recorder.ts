/**
 * rrweb DOM recording with privacy defaults, and the buffer that turns rrweb events into
 * wire chunks: base64(gzip(JSON array of events)), compressed asynchronously once taken.
 */
import { record } from '@rrweb/record';
import { watchSheets } from './css';
import { canCompress, gzip, gzipStored } from './gzip';
import { BLOCK, MASK, cleanUrl } from './privacy';
import { nextSeq } from './session';
import { safe, state } from './util';
import type { Chunk } from './transport';

/** Minimal view of an rrweb event: what the buffer and the session logic read. */
export interface RrwebEvent {
  type: number;
  timestamp: number;
  data?: { source?: number };
}

/**
 * Raw JSON kept per chunk: small enough that one chunk fits a 60 KB beacon once compressed. At
 * page hide the last chunks may have to go uncompressed, and then only about 44 KB fit.
 */
const CHUNK_RAW_BYTES = 64 * 1024;

/** A chunk being compressed keeps its JSON until its data is set, for the synchronous fallback. */
export interface Sealed {
  chunk: Chunk;
  json?: string;
}

/** An open chunk: its events' JSON joined by commas, and what the wire chunk reports. */
interface Pending {
  json: string;
  first_ts: number;
  last_ts: number;
  count: number;
}

/** The tag of the custom rrweb event that carries the page's URL when its fragment changes. */
const URL_EVENT_TAG = 'hm-url';

let stopRecording: (() => void) | undefined;
let pending: Pending[] = [];
export let bufferedBytes = 0;

export function startRecording(maskText: boolean, emit: (e: RrwebEvent) => void): void {
  // rrweb sends the page's URL (its Meta event) only with a full snapshot. A new fragment (an in-page anchor,
  // a hash route) is sent as a custom event, so that the replay follows it and its `:target` rules: not as a
  // Meta event, which rrweb's player takes for the start of a snapshot when it seeks.
  const meta = safe(() => {
    const data = { tag: URL_EVENT_TAG, payload: { href: cleanUrl(location.href) } };
    emit({ type: 5, timestamp: Date.now(), data } as RrwebEvent);
  });
  addEventListener('hashchange', meta);
  watchSheets();
  const stopRrweb = record({
    emit: emit as (e: unknown) => void,
    maskAllInputs: true,
    maskInputOptions: { password: true },
    blockSelector: BLOCK,
    // privacy.scrub masks what rrweb misses; rrweb masking the same text first costs nothing.
    maskTextSelector: maskText ? '*' : MASK,
    // Every input event, not only `change` ('last'): the replay shows masked typing as it happens, one * a key.
    sampling: { mousemove: 50, scroll: 150, media: 800 },
    // A canvas's pixels as an image in each snapshot (and in a mutation that adds one); the build leaves out
    // rrweb's recording of every later drawing call (build.mjs), ~3 KB gzipped the core cannot carry.
    recordCanvas: !maskText, // pixels can show text: not where the project masks all text
    recordCrossOriginIframes: false, // nor its relay of cross-origin frames' recordings (build.mjs)
    collectFonts: false,
    inlineStylesheet: true,
    slimDOMOptions: {
      script: true,
      comment: true,
      headFavicon: true,
      headWhitespace: true,
      headMetaSocial: true,
      headMetaRobots: true,
      headMetaHttpEquiv: true,
      headMetaVerification: true,
    },
    // rrweb wraps its own listeners with this: swallow and count, never throw into the page.
    errorHandler: () => {
      state.errors++;
      return true;
    },
  });
  stopRecording = () => {
    removeEventListener('hashchange', meta);
    if (stopRrweb) stopRrweb();
  };
}

export function stop(): void {
  if (stopRecording) stopRecording();
  stopRecording = undefined;
  pending = [];
  bufferedBytes = 0;
}

/** New full snapshot (after a session rotation); rrweb refuses before its first one, which is fine. */
export function snapshot(): void {
  if (stopRecording) {
    try {
      record.takeFullSnapshot(true);
    } catch (e) {
      /* not started yet: its initial snapshot will come */
    }
  }
}

export function add(e: RrwebEvent): void {
  const json = JSON.stringify(e);
  let last = pending[pending.length - 1];
  if (!last || last.json.length + json.length > CHUNK_RAW_BYTES) {
    pending.push((last = { json: '', first_ts: e.timestamp, last_ts: 0, count: 0 }));
  }
  last.json += (last.count++ ? ',' : '') + json;
  last.last_ts = e.timestamp;
  bufferedBytes += json.length;
}

/**
 * Take the buffered events as chunks numbered in order, and start compressing them: `ready` is
 * called as each one's data is set. Until then `finish` sets it synchronously, uncompressed.
 */
export function take(ready: () => void): Sealed[] {
  const sealed = pending.map((p): Sealed => {
    const json = '[' + p.json + ']';
    const chunk: Chunk = { seq: nextSeq(), first_ts: p.first_ts, last_ts: p.last_ts, count: p.count, data: '' };
    const s: Sealed = { chunk, json };
    if (!canCompress) finish(s);
    else {
      const done = safe((bytes?: Uint8Array) => {
        finish(s, bytes);
        ready();
      });
      Promise.resolve(json).then(gzip).then(done, () => done()); // failed: stored, unless already
    }
    return s;
  });
  pending = [];
  bufferedBytes = 0;
  return sealed;
}

/** Set a chunk's data now (unless compression already did): `bytes` when compressed, else stored gzip. */
export function finish(s: Sealed, bytes?: Uint8Array): void {
  if (s.json === undefined) return;
  s.chunk.data = base64(bytes || gzipStored(s.json));
  s.json = undefined;
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(s);
}
