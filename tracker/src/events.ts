/**
 * Builds analytics events (common fields, limits of the capture API) and keeps the session
 * alive: user activity after 30 idle minutes starts a new session with a new full snapshot.
 */
import { addEvent, addRecording, flush } from './queue';
import * as recorder from './recorder';
import { expired, rotate, touch } from './session';
import { cleanUrl, scrub } from './privacy';
import { byteLength, clip, now, state, uuid } from './util';

const MAX_PROPS_BYTES = 16 * 1024;

/** Note user activity; after 30 idle minutes send the old session's data and start a new one. */
export function activity(): boolean {
  if (!expired()) {
    touch();
    return false;
  }
  flush();
  rotate();
  recorder.snapshot();
  return true;
}

/** Props as a detached plain object of at most 16 KiB of JSON (else a marker). */
function cleanProps(props: unknown): object {
  if (!props || typeof props !== 'object' || Array.isArray(props)) return {};
  let json: string;
  try {
    json = JSON.stringify(props);
  } catch (e) {
    return { _invalid: true }; // cycles, BigInt…
  }
  return byteLength(json) > MAX_PROPS_BYTES ? { _truncated: true } : JSON.parse(json);
}

/**
 * Queue one event, with an id of its own that retries keep. `passive` events (errors, pageleave)
 * belong to the current session but are not user activity: they neither extend nor rotate it.
 */
export function emit(type: string, fields: Record<string, unknown>, props?: unknown, passive?: boolean): void {
  if (!state.on) return;
  if (!passive) activity();
  addEvent({ id: uuid(), type, ts: now(), url: clip(cleanUrl(location.href), 2048), ...fields, props: cleanProps(props) });
}

/**
 * rrweb emit callback: user input counts as activity; background DOM changes of an idle tab are
 * dropped; what is kept is scrubbed of private data before it is buffered.
 */
export function onRecording(e: recorder.RrwebEvent): void {
  if (!state.on) return;
  // IncrementalSnapshot (3) from mouse move/interaction, scroll, resize, input, touch (sources 1–6)
  const source = e.data && e.data.source;
  if (e.type === 3 && source !== undefined && source >= 1 && source <= 6) {
    if (activity()) return; // the new session starts with the full snapshot just taken
  } else if (expired()) {
    return;
  }
  scrub(e);
  addRecording(e);
}
