/**
 * A visible placeholder for blocked elements (`.hm-block`, `[data-hm-block]`, rrweb's `rr-block`).
 *
 * The recorder keeps nothing of a blocked element but its tag, class, id and recorded size
 * (`rr_width`/`rr_height`, which the replay turns into a style and drops), so the replay would show
 * an empty, often invisible box. `markBlocked` gives each such node a `data-hm-blocked` attribute
 * (after the sanitiser: it is ours, not the recording's), and `BLOCKED_STYLE_RULES` draws it as a
 * hatched box of the recorded size with the word "Blocked". The rules are inserted by rrweb through
 * the CSSOM into the replay document, which the replay page's CSP allows (no stylesheet is loaded).
 */
import type { RecordedEvent } from './sanitise';

const FULL_SNAPSHOT_EVENT = 2;
const INCREMENTAL_EVENT = 3;
const MUTATION_SOURCE = 0;
const ELEMENT_NODE = 2;

export const BLOCKED_ATTRIBUTE = 'data-hm-blocked';

export const BLOCKED_STYLE_RULES = [
  `[${BLOCKED_ATTRIBUTE}] { background: repeating-linear-gradient(45deg, #e2e8f0 0 8px, #f8fafc 8px 16px) !important;` +
    ' outline: 1px dashed #64748b !important; outline-offset: -1px; box-sizing: border-box !important;' +
    ' overflow: hidden !important; min-width: 8px; min-height: 8px; }',
  `[${BLOCKED_ATTRIBUTE}]::after { content: "Blocked"; display: block; padding: 4px 8px; color: #334155;` +
    ' font: 600 12px/16px system-ui, sans-serif; letter-spacing: 0.04em; text-align: center; }',
];

interface SerializedNode {
  type?: unknown;
  attributes?: Record<string, unknown>;
  childNodes?: unknown;
}

/** Mark, in place, every blocked element the events add (full snapshots and added nodes). */
export function markBlocked(events: RecordedEvent[]): RecordedEvent[] {
  for (const e of events) {
    const data = e.data as { node?: unknown; source?: unknown; adds?: unknown } | undefined;
    if (!data) continue;
    if (e.type === FULL_SNAPSHOT_EVENT) markTree(data.node);
    else if (e.type === INCREMENTAL_EVENT && data.source === MUTATION_SOURCE && Array.isArray(data.adds)) {
      for (const add of data.adds) markTree(add && (add as { node?: unknown }).node);
    }
  }
  return events;
}

/** Without recursion: a recording may nest thousands of levels deep. */
function markTree(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop() as SerializedNode | null | undefined;
    if (!node || typeof node !== 'object') continue;
    const attrs = node.attributes;
    if (node.type === ELEMENT_NODE && attrs && typeof attrs === 'object' && ('rr_width' in attrs || 'rr_height' in attrs)) {
      attrs[BLOCKED_ATTRIBUTE] = '';
    }
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push(child);
  }
}
