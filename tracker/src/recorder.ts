/**
 * rrweb DOM recording with privacy defaults, and the buffer that turns rrweb events into
 * wire chunks: base64(gzip(JSON array of events)).
 */
import { record } from '@rrweb/record';
import { gzipSync } from 'fflate';
import { state } from './util';
import type { Chunk } from './transport';

/** Minimal view of an rrweb event: what the buffer and the session logic read. */
export interface RrwebEvent {
  type: number;
  timestamp: number;
  data?: { source?: number };
}

/** Raw JSON kept per chunk: small enough that one chunk fits a 60 KB beacon once gzipped. */
const CHUNK_RAW_BYTES = 64 * 1024;

/** An open chunk: its events' JSON joined by commas, and what the wire chunk reports. */
interface Pending {
  json: string;
  first_ts: number;
  last_ts: number;
  count: number;
}

let stopRecording: (() => void) | undefined;
let pending: Pending[] = [];
export let bufferedBytes = 0;

export function startRecording(maskText: boolean, emit: (e: RrwebEvent) => void): void {
  stopRecording = record({
    emit: emit as (e: unknown) => void,
    maskAllInputs: true,
    maskInputOptions: { password: true },
    blockSelector: '.hm-block,[data-hm-block]',
    // Rich-text editors hold what people type, like inputs: masked too.
    maskTextSelector: maskText ? '*' : '.hm-mask,[data-hm-mask],[contenteditable]:not([contenteditable=false])',
    sampling: { mousemove: 50, scroll: 150, media: 800, input: 'last' },
    recordCanvas: false,
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

/** Take the buffered events as wire chunks (gzip + base64), numbering them with `nextSeq`. */
export function takeChunks(nextSeq: () => number): Chunk[] {
  const chunks = pending.map((p): Chunk => ({
    seq: nextSeq(),
    first_ts: p.first_ts,
    last_ts: p.last_ts,
    count: p.count,
    data: base64(gzipSync(new TextEncoder().encode('[' + p.json + ']'))),
  }));
  pending = [];
  bufferedBytes = 0;
  return chunks;
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(s);
}
