/**
 * Makes recorded rrweb events inert before the player sees them.
 *
 * A recording is input from the recorded site, and anyone holding a project's
 * public key can send one, so the replay treats it as hostile. Three layers:
 *
 * 1. rrweb's Replayer (2.1.6) rebuilds the page in an iframe sandboxed with only
 *    `allow-same-origin`: no scripts, forms, popups or top navigation. We never
 *    set `UNSAFE_replayCanvas` (the one option that adds `allow-scripts`), and
 *    replay.ts refuses to go on if the iframe's sandbox is anything else.
 * 2. The dashboard's CSP (`script-src 'self'`, `connect-src 'self'`,
 *    `object-src 'none'`, `base-uri 'none'`, `form-action 'self'`), which the
 *    about:blank replay document inherits.
 * 3. This module, so that the rebuilt DOM holds nothing active even if a layer
 *    above failed. It walks every serialized node of full snapshots and of
 *    mutations' added nodes (iteratively: a hostile tree may be very deep), and
 *    every mutation's attribute and text changes, and changes them in place:
 *    - `script` elements (any case, HTML or SVG, prefixed or not) become empty `noscript`
 *      elements without attributes, and later text changes to their text nodes
 *      are blanked (rrweb itself maps only lower-case `script` to noscript);
 *    - `link` elements other than stylesheets (prefetch, preload, icon,
 *      manifest…; rrweb's inlined stylesheets carry `_cssText`) become inert
 *      `hm-inert-link` elements;
 *    - attributes named `on…` (event handlers) are dropped everywhere, and so
 *      are `srcdoc`, `http-equiv` (no `<meta>` refresh, cookie or CSP),
 *      `formaction` and rrweb's unused `rr_src`;
 *    - per element: `base` loses `href` and `target`; `iframe`, `frame`,
 *      `object`, `embed`, `portal` and `fencedframe` lose `src`, `data` and
 *      `codebase` (same-origin frames are replayed from their own recorded DOM,
 *      which needs no URL); `form` loses `action`. Changes to `src`, `data` or
 *      `action` of elements never seen are dropped;
 *    - URL attributes (`href`, `src`, `action`, `data`, `poster`,
 *      `background`, `cite`, `ping`, `codebase`, `longdesc`, `manifest`,
 *      `icon`, `usemap`, `classid`, `archive`, and any name ending in `href`
 *      or `src`): a `javascript:`, `vbscript:` or non-media `data:` URL (after
 *      removing whitespace and control characters, ignoring case) becomes `#`;
 *      a relative URL is resolved against the recorded page's URL (from the
 *      last Meta event), never against the dashboard, or becomes `#` when no
 *      page URL is known; `srcset` candidates get the same treatment;
 *    - `url(…)` and `@import "…"` in inline CSS (`style`, rrweb's `_cssText`)
 *      are resolved the same way (best effort: a regex, not a CSS parser);
 *      `javascript:`/`vbscript:` ones become `about:invalid` (CSS cannot run a
 *      `data:` URL, so fonts and images inlined as any `data:` type stay);
 *    - SVG animation values (`values`, `to`, `from`, `by`) that mention a
 *      `javascript:`, `vbscript:` or `data:` scheme anywhere are dropped;
 *    - rrweb's `rr_dataURL` is kept only when it is a `data:image/` URL;
 *    - element names that are not valid names become `hm-invalid`.
 *    Plugin events (type 6), events of unknown type and events without a
 *    numeric timestamp are dropped. Meta events are kept: the dashboard only
 *    ever shows their `href` as text.
 *
 * Not rewritten: CSS in stylesheet-rule events (incremental sources 8, 13,
 * 15). It cannot run script; at worst a relative `url()` there loads an image
 * or font from the dashboard's origin with a GET.
 */

/** Serialized DOM node as rrweb-snapshot writes it (only what we read). */
interface SerializedNode {
  type: number;
  id?: number;
  tagName?: string;
  attributes?: Record<string, unknown>;
  childNodes?: SerializedNode[];
  textContent?: string;
}

interface MutationData {
  source: number;
  texts?: { id: number; value: string | null }[];
  attributes?: { id: number; attributes: Record<string, unknown> }[];
  adds?: { parentId: number; node: SerializedNode }[];
}

/** An rrweb event, as read from the recording API. */
export interface RecordedEvent {
  type: number;
  timestamp: number;
  data?: unknown;
}

const enum EventType {
  DomContentLoaded = 0,
  Load = 1,
  FullSnapshot = 2,
  IncrementalSnapshot = 3,
  Meta = 4,
  Custom = 5,
}
const enum NodeType {
  Document = 0,
  Element = 2,
  Text = 3,
}
const MUTATION_SOURCE = 0;

const DROPPED_EVERYWHERE = new Set(['srcdoc', 'http-equiv', 'formaction', 'rr_src']);
const FRAME_URLS = ['src', 'data', 'codebase'];
const DROPPED_BY_TAG: Record<string, readonly string[]> = {
  base: ['href', 'target'],
  iframe: FRAME_URLS,
  frame: FRAME_URLS,
  object: FRAME_URLS,
  embed: FRAME_URLS,
  portal: FRAME_URLS,
  fencedframe: FRAME_URLS,
  form: ['action'],
};
const DROPPED_ON_UNKNOWN_NODE = ['src', 'data', 'action', 'codebase'];
const URL_ATTRIBUTES = new Set([
  'href', 'src', 'action', 'data', 'poster', 'background', 'cite', 'ping', 'codebase',
  'longdesc', 'manifest', 'icon', 'usemap', 'classid', 'archive', 'formaction',
]);
const CSS_ATTRIBUTES = new Set(['style', '_csstext']);
const SVG_ANIMATION_VALUES = new Set(['values', 'to', 'from', 'by']);
const VALID_TAG = /^[a-zA-Z][a-zA-Z0-9._:-]*$/;
const BLANKED_URL = '#';
const BLANKED_CSS_URL = 'about:invalid';

/** `javascript:`, `vbscript:` and `data:` URLs other than images, audio, video and fonts. */
const DANGEROUS_URL = /^(?:javascript:|vbscript:|livescript:|data:(?!(?:image|audio|video|font)\/))/;
const DANGEROUS_ANYWHERE = /(?:javascript:|vbscript:|livescript:|data:)/;
const SCRIPT_URL = /^(?:javascript:|vbscript:|livescript:)/;
const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:/;
const CSS_URL = /url\(\s*(['"]?)([^'")]*)\1\s*\)/gi;
const CSS_IMPORT = /@import\s+(['"])([^'"]*)\1/gi;

function normalised(value: string): string {
  // Browsers ignore whitespace and control characters around and inside a URL's scheme.
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u0020\u007f-\u009f]+/g, '').toLowerCase();
}

export function isDangerousUrl(value: string): boolean {
  return DANGEROUS_URL.test(normalised(value));
}

/** A stylesheet `<link>`: rrweb inlines readable ones as `_cssText` (dropping rel and href). */
function isStylesheetLink(attrs: Record<string, unknown>): boolean {
  return typeof attrs._cssText === 'string' || /\bstylesheet\b/i.test(String(attrs.rel || ''));
}

function isUrlAttribute(lname: string): boolean {
  return URL_ATTRIBUTES.has(lname) || lname.endsWith('href') || lname.endsWith('src');
}

export class RecordingSanitiser {
  /** Lower-case tag of every element seen in this page's recording, by rrweb node id. */
  private tags = new Map<number, string>();
  /** Text nodes inside neutralised scripts: their later text changes are blanked. */
  private inertText = new Set<number>();
  /** The recorded page's URL (last Meta event): relative URLs resolve against it. */
  private pageUrl = '';
  /** How many things were neutralised (read by tests; handy when looking into a recording). */
  neutralised = 0;

  /** The event made inert (changed in place), or null when it must not be replayed. */
  event(e: RecordedEvent): RecordedEvent | null {
    if (!e || typeof e !== 'object' || typeof e.type !== 'number' || typeof e.timestamp !== 'number') {
      this.neutralised++;
      return null;
    }
    switch (e.type) {
      case EventType.FullSnapshot: {
        this.tags.clear();
        this.inertText.clear();
        const data = e.data as { node?: SerializedNode } | undefined;
        if (data && data.node) this.walk(data.node, '');
        return e;
      }
      case EventType.IncrementalSnapshot: {
        const data = e.data as MutationData | undefined;
        if (data && data.source === MUTATION_SOURCE) this.mutation(data);
        return e;
      }
      case EventType.Meta: {
        const href = (e.data as { href?: unknown } | undefined)?.href;
        this.pageUrl = typeof href === 'string' && /^https?:/i.test(href) ? href : '';
        return e;
      }
      case EventType.DomContentLoaded:
      case EventType.Load:
      case EventType.Custom:
        return e;
      default: // Plugin events (we load no replay plugins) and anything unknown
        this.neutralised++;
        return null;
    }
  }

  events(events: RecordedEvent[]): RecordedEvent[] {
    const out: RecordedEvent[] = [];
    for (const e of events) {
      const clean = this.event(e);
      if (clean) out.push(clean);
    }
    return out;
  }

  private mutation(data: MutationData): void {
    for (const add of Array.isArray(data.adds) ? data.adds : []) {
      if (add && add.node) this.walk(add.node, this.tags.get(add.parentId) || '');
    }
    for (const change of Array.isArray(data.attributes) ? data.attributes : []) {
      if (change && change.attributes && typeof change.attributes === 'object') {
        this.attributes(change.attributes, this.tags.get(change.id));
      }
    }
    for (const text of Array.isArray(data.texts) ? data.texts : []) {
      if (text && this.inertText.has(text.id) && text.value) {
        text.value = '';
        this.neutralised++;
      }
    }
  }

  private walk(root: SerializedNode, rootParentTag: string): void {
    const stack: [SerializedNode, string][] = [[root, rootParentTag]];
    while (stack.length) {
      const [node, parentTag] = stack.pop()!;
      if (!node || typeof node !== 'object') continue;
      let tag = parentTag;
      if (node.type === NodeType.Element) {
        tag = this.element(node);
      } else if (node.type === NodeType.Text && parentTag === 'script') {
        if (node.textContent) this.neutralised++;
        node.textContent = '';
        if (typeof node.id === 'number') this.inertText.add(node.id);
      } else if (node.type === NodeType.Document) {
        tag = '';
      }
      if (Array.isArray(node.childNodes)) {
        for (const child of node.childNodes) stack.push([child, tag]);
      }
    }
  }

  /** Neutralise one element in place; returns its original lower-case tag, for its children. */
  private element(node: SerializedNode): string {
    let tag = typeof node.tagName === 'string' ? node.tagName.toLowerCase() : '';
    if (!node.attributes || typeof node.attributes !== 'object') node.attributes = {};
    if (!VALID_TAG.test(tag)) {
      node.tagName = tag = 'hm-invalid';
      this.neutralised++;
    } else if (tag === 'link' && !isStylesheetLink(node.attributes)) {
      node.tagName = tag = 'hm-inert-link';
      this.neutralised++;
    }
    if (tag.slice(tag.lastIndexOf(':') + 1) === 'script') tag = 'script'; // svg:script is an SVG script
    if (typeof node.id === 'number') this.tags.set(node.id, tag);
    if (tag === 'script') {
      node.tagName = 'noscript';
      node.attributes = {};
      this.neutralised++;
      return tag;
    }
    this.attributes(node.attributes, tag);
    return tag;
  }

  /** Neutralise attributes in place; `tag` undefined means the element was never seen. */
  private attributes(attrs: Record<string, unknown>, tag: string | undefined): void {
    if (tag === 'script' || tag === 'hm-inert-link') {
      for (const name of Object.keys(attrs)) delete attrs[name];
      return;
    }
    const byTag = tag === undefined ? DROPPED_ON_UNKNOWN_NODE : DROPPED_BY_TAG[tag] || [];
    for (const name of Object.keys(attrs)) {
      const lname = name.toLowerCase();
      const value = attrs[name];
      if (lname.startsWith('on') || DROPPED_EVERYWHERE.has(lname) || byTag.indexOf(lname) >= 0) {
        this.drop(attrs, name);
      } else if (typeof value !== 'string') {
        continue; // null (removal), booleans, numbers and rrweb's style objects
      } else if (lname === 'rr_dataurl') {
        if (!normalised(value).startsWith('data:image/')) this.drop(attrs, name);
      } else if (SVG_ANIMATION_VALUES.has(lname)) {
        if (DANGEROUS_ANYWHERE.test(normalised(value))) this.drop(attrs, name);
      } else if (lname === 'srcset') {
        this.replace(attrs, name, this.srcset(value));
      } else if (isUrlAttribute(lname)) {
        this.replace(attrs, name, this.url(value, BLANKED_URL));
      } else if (CSS_ATTRIBUTES.has(lname)) {
        this.replace(attrs, name, this.css(value));
      }
    }
  }

  /** A URL made safe: dangerous schemes blanked, relative URLs resolved against the recorded page. */
  private url(value: string, blank: string, inCss = false): string {
    if (inCss ? SCRIPT_URL.test(normalised(value)) : isDangerousUrl(value)) return blank;
    const trimmed = value.trim();
    if (trimmed === '' || trimmed[0] === '#' || HAS_SCHEME.test(normalised(trimmed))) return value;
    if (!this.pageUrl) return blank;
    try {
      return new URL(trimmed, this.pageUrl).href;
    } catch (e) {
      return blank;
    }
  }

  private srcset(value: string): string {
    return value
      .split(',')
      .map((candidate) => {
        const [url, ...descriptor] = candidate.trim().split(/\s+/);
        const safe = url ? this.url(url, '') : '';
        return safe ? [safe, ...descriptor].join(' ') : '';
      })
      .filter(Boolean)
      .join(', ');
  }

  private css(value: string): string {
    return value
      .replace(CSS_URL, (_m, quote: string, url: string) => `url(${quote}${this.url(url, BLANKED_CSS_URL, true)}${quote})`)
      .replace(CSS_IMPORT, (_m, quote: string, url: string) => `@import ${quote}${this.url(url, BLANKED_CSS_URL, true)}${quote}`);
  }

  private drop(attrs: Record<string, unknown>, name: string): void {
    delete attrs[name];
    this.neutralised++;
  }

  private replace(attrs: Record<string, unknown>, name: string, value: string): void {
    if (attrs[name] !== value) {
      attrs[name] = value;
      this.neutralised++;
    }
  }
}
