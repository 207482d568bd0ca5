/**
 * Makes recorded rrweb events inert before the player sees them.
 *
 * A recording is input from the recorded site, and anyone holding a project's
 * public key can send one, so the replay treats it as hostile: it must run
 * nothing, and make the viewer's browser contact no host but the dashboard and
 * the project's allowed origins, without ever telling them the dashboard's URL.
 * Four layers:
 *
 * 1. rrweb's Replayer (2.1.6) rebuilds the page in an iframe sandboxed with only
 *    `allow-same-origin`: no scripts, forms, popups or top navigation. We never
 *    set `UNSAFE_replayCanvas` (the one option that adds `allow-scripts`), and
 *    replay.ts refuses to go on if the iframe's sandbox is anything else.
 * 2. The replay page's CSP, which the about:blank replay document inherits:
 *    `script-src 'self'`, `connect-src 'self'`, `object-src 'none'`,
 *    `base-uri 'none'`, and images, fonts, media and stylesheets only from the
 *    dashboard, `data:`/`blob:` and the project's allowed origins.
 * 3. `Referrer-Policy: no-referrer` on the replay page, which the replay
 *    document inherits too, and a `<meta name=referrer content=no-referrer>`
 *    that replay.ts puts into it after every rebuild.
 * 4. This module, so that the rebuilt DOM holds nothing active and names no
 *    other host even if a layer above failed. It walks every serialized node of
 *    full snapshots and of mutations' added nodes (iteratively: a hostile tree
 *    may be very deep), every mutation's attribute and text changes, and the
 *    CSS of stylesheet-rule, style-declaration, adopted-stylesheet and font
 *    events, and changes them in place:
 *    - `script` elements (any case, HTML or SVG, prefixed or not) become empty `noscript`
 *      elements without attributes, and later text changes to their text nodes
 *      are blanked (rrweb itself maps only lower-case `script` to noscript);
 *    - `link` elements keep only the `stylesheet` and `alternate` tokens of their
 *      `rel` (no preload, prefetch, preconnect, dns-prefetch, modulepreload,
 *      prerender…, also when a mutation changes `rel` later); one that is then no
 *      stylesheet (and has no rrweb-inlined `_cssText`) becomes an inert
 *      `hm-inert-link`; `<meta name=referrer>` becomes an inert `hm-inert-meta`,
 *      and a later change of a meta's `name` to `referrer` is dropped;
 *    - attributes named `on…` (event handlers) are dropped everywhere, and so
 *      are `srcdoc`, `http-equiv` (no `<meta>` refresh, cookie or CSP),
 *      `formaction`, `ping`, `referrerpolicy`, `attributionsrc` and rrweb's unused `rr_src`;
 *    - per element: `base` loses `href` and `target`; `iframe`, `frame`,
 *      `object`, `embed`, `portal` and `fencedframe` lose `src`, `data` and
 *      `codebase` (same-origin frames are replayed from their own recorded DOM,
 *      which needs no URL); `form` loses `action`. Changes to `src`, `data` or
 *      `action` of elements never seen are dropped;
 *    - URLs that load something (`src`, `href` other than a link's, `poster`,
 *      `background`, `data`, `srcset` candidates, `xlink:href`…, any name ending
 *      in `src` or `href`) are kept only when they point at an allowed origin
 *      (the dashboard's own or the project's), are `data:` images, audio, video
 *      or fonts, `blob:` URLs, or (`href` only) `#fragment` references into the
 *      document; anything else is dropped. A relative URL is resolved against
 *      the recorded page's URL (from the last Meta event), never against the
 *      dashboard, and is dropped when no page URL is known;
 *    - link targets (`href` of `a` and `area`, `cite`, `longdesc`, `usemap`,
 *      `action`) are resolved the same way and become `#` when they are
 *      `javascript:`, `vbscript:`, non-media `data:`, or of another origin;
 *    - CSS (`style` attributes and rrweb's style diffs, rrweb's `_cssText`, text
 *      of `<style>` elements, SVG presentation attributes such as `fill`,
 *      `filter` and `mask`, rules of stylesheet events, `FontFace` sources) goes
 *      through a CSS tokenizer (cssurls.ts): every `url()`, `image-set()` string
 *      and `@import` is resolved the same way; one of another origin (or a
 *      script URL) becomes `url("about:invalid")`, such an `@import` is removed,
 *      and an `image-set()` fed by `var()`/`attr()` is blocked whole. A kept one
 *      is written `url("…" referrer-policy(no-referrer))` where the browser
 *      supports request modifiers: Chromium sends the document's origin as
 *      Referer for URLs of inline CSS whatever the referrer policy, and a
 *      recorded `referrer-policy(unsafe-url)` would send the dashboard's URL.
 *      `data:` URLs stay in CSS (CSS cannot run them), except in `@import`;
 *    - SVG animation values (`values`, `to`, `from`, `by`) that name a URL scheme,
 *      `//` or `url(` anywhere are dropped;
 *    - rrweb's `rr_dataURL` is kept only when it is a `data:image/` URL;
 *    - element names that are not valid names become `hm-invalid`.
 *    - captured assets: when the dashboard captured a URL's stylesheet, image or font
 *      (`setAssets`, the session's asset map), a resource URL that resolves to it
 *      (in attributes, srcset and CSS, `@import` included) becomes the dashboard's
 *      asset URL (same-origin: web fonts load without CORS on the site, and the
 *      replay no longer depends on the site). Only `/projects/N/assets/SHA256`
 *      paths of the dashboard are accepted as such; a URL without a captured copy
 *      falls under the rules above. Link targets are never rewritten.
 *    Plugin events (type 6), events of unknown type, events without a numeric
 *    timestamp and font events whose source is neither CSS text nor bytes are
 *    dropped; canvas mutations lose their commands (the replayer ignores them
 *    anyway without `UNSAFE_replayCanvas`). Meta events are kept: the dashboard
 *    only ever shows their `href` as text.
 */
import { CssUrlUse, rewriteCssUrls } from './cssurls';

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

interface StyleSheetRuleData {
  adds?: { rule?: unknown }[];
  replace?: unknown;
  replaceSync?: unknown;
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
  CDATA = 4,
}
/** rrweb's IncrementalSource values that carry markup, CSS or URLs. */
const enum Source {
  Mutation = 0,
  StyleSheetRule = 8,
  CanvasMutation = 9,
  Font = 10,
  StyleDeclaration = 13,
  AdoptedStyleSheet = 15,
}

const DROPPED_EVERYWHERE = new Set([
  'srcdoc', 'http-equiv', 'formaction', 'rr_src', 'ping', 'referrerpolicy', 'attributionsrc',
]);
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
  'href', 'src', 'action', 'data', 'poster', 'background', 'cite', 'codebase',
  'longdesc', 'manifest', 'icon', 'usemap', 'classid', 'archive', 'formaction',
]);
/** URL attributes that only name a target (followed on click, or never): no fetch. */
const TARGET_ATTRIBUTES = new Set(['cite', 'longdesc', 'usemap', 'action']);
const LINK_TAGS = new Set(['a', 'area']);
const CSS_ATTRIBUTES = new Set(['style', '_csstext']);
/** SVG presentation attributes whose value may hold `url(…)`. */
const PRESENTATION_URL_ATTRIBUTES = new Set([
  'fill', 'stroke', 'filter', 'mask', 'clip-path', 'marker-start', 'marker-mid', 'marker-end', 'cursor',
]);
/** Elements emptied of every attribute, now and on later changes. */
const INERT_TAGS = new Set(['hm-inert-link', 'hm-inert-meta']);
/** The only `rel` tokens a replayed `<link>` keeps: everything else (hints, icons, manifests) fetches. */
const KEPT_LINK_RELS = new Set(['stylesheet', 'alternate']);
/** `@namespace` names that are kept: they are never fetched, and selectors depend on them. */
const KNOWN_NAMESPACES = new Set([
  'http://www.w3.org/1999/xhtml', 'http://www.w3.org/2000/svg', 'http://www.w3.org/1998/Math/MathML',
  'http://www.w3.org/1999/xlink',
]);
const SVG_ANIMATION_VALUES = new Set(['values', 'to', 'from', 'by']);
const VALID_TAG = /^[a-zA-Z][a-zA-Z0-9._:-]*$/;
const BLANKED_URL = '#';
/** The only form of a captured asset's URL that the asset map may give (a dashboard path). */
const ASSET_PATH = /^\/projects\/[0-9]{1,18}\/assets\/[0-9a-f]{64}$/;

/** `javascript:`, `vbscript:` and `data:` URLs other than images, audio, video and fonts. */
const DANGEROUS_URL = /^(?:javascript:|vbscript:|livescript:|data:(?!(?:image|audio|video|font)\/))/;
const URL_IN_ANIMATION = /(?:[a-z][a-z0-9+.-]*:|\/\/|url\()/;
const SCRIPT_URL = /^(?:javascript:|vbscript:|livescript:)/;
const ASCII_WHITESPACE = /[\t\n\f\r ]+/;
/**
 * Chromium fetches URLs of inline CSS (`<style>`, `style=`) with the document's origin as Referer
 * whatever the document's referrer policy; this CSS request modifier is what stops it.
 */
const NO_REFERRER_MODIFIER = ' referrer-policy(no-referrer)';

function normalised(value: string): string {
  // Browsers ignore whitespace and control characters around and inside a URL's scheme.
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u0020\u007f-\u009f]+/g, '').toLowerCase();
}

/** The request modifiers for fetched CSS URLs: a browser without modifiers would drop such a declaration. */
function cssFetchModifiers(): string {
  try {
    const probe = `url("https://a.example/x.png"${NO_REFERRER_MODIFIER})`;
    return typeof CSS !== 'undefined' && CSS.supports('background-image', probe) ? NO_REFERRER_MODIFIER : '';
  } catch (e) {
    return '';
  }
}

export function isDangerousUrl(value: string): boolean {
  return DANGEROUS_URL.test(normalised(value));
}

/** `http(s)://host[:port]` origins as the URL parser writes them; anything else is left out. */
export function origins(values: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const value of values) {
    try {
      const url = new URL(value);
      if (url.protocol === 'http:' || url.protocol === 'https:') out.add(url.origin);
    } catch (e) {
      continue; // not a URL: allows nothing
    }
  }
  return out;
}

/** A stylesheet `<link>`: rrweb inlines readable ones as `_cssText` (dropping rel and href). */
function isStylesheetLink(attrs: Record<string, unknown>): boolean {
  return typeof attrs._cssText === 'string' || /\bstylesheet\b/i.test(String(attrs.rel || ''));
}

function isReferrerMeta(attrs: Record<string, unknown>): boolean {
  return Object.keys(attrs).some((name) => name.toLowerCase() === 'name' && isReferrerName(attrs[name]));
}

function isReferrerName(value: unknown): boolean {
  return typeof value === 'string' && value.trim().toLowerCase() === 'referrer';
}

function keptLinkRel(value: string): string {
  const tokens = value.split(ASCII_WHITESPACE).filter((token) => token !== '');
  const kept = tokens.filter((token) => KEPT_LINK_RELS.has(token.toLowerCase()));
  return kept.length === tokens.length ? value : kept.join(' ');
}

/** A URL that only names where a click would go (or nothing at all): `href` of a link, `cite`… */
function isTargetAttribute(local: string | undefined, lname: string): boolean {
  return TARGET_ATTRIBUTES.has(lname) || (local !== undefined && LINK_TAGS.has(local) && lname.endsWith('href'));
}

function isUrlAttribute(lname: string): boolean {
  return URL_ATTRIBUTES.has(lname) || lname.endsWith('href') || lname.endsWith('src');
}

/** The local name of a (possibly prefixed) lower-case tag: `svg:script` → `script`. */
function localName(tag: string): string {
  return tag.slice(tag.lastIndexOf(':') + 1);
}

/** `srcset` candidates as the HTML parser splits them: a URL, then descriptors up to a comma outside parentheses. */
function srcsetCandidates(value: string): { url: string; descriptors: string }[] {
  const out: { url: string; descriptors: string }[] = [];
  let pos = 0;
  const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\f' || c === '\r';
  while (pos < value.length) {
    while (pos < value.length && (isSpace(value[pos]) || value[pos] === ',')) pos++;
    if (pos >= value.length) break;
    const urlStart = pos;
    while (pos < value.length && !isSpace(value[pos])) pos++;
    let url = value.slice(urlStart, pos);
    let descriptors = '';
    if (url.endsWith(',')) {
      url = url.replace(/,+$/, '');
    } else {
      const descStart = pos;
      let inParens = false;
      while (pos < value.length && (inParens || value[pos] !== ',')) {
        if (value[pos] === '(') inParens = true;
        else if (value[pos] === ')') inParens = false;
        pos++;
      }
      descriptors = value.slice(descStart, pos).trim();
      pos++; // the comma
    }
    out.push({ url, descriptors });
  }
  return out;
}

export class RecordingSanitiser {
  /** Lower-case tag of every element seen in this page's recording, by rrweb node id. */
  private tags = new Map<number, string>();
  /** Text nodes inside neutralised scripts: their later text changes are blanked. */
  private inertText = new Set<number>();
  /** Text nodes inside `<style>`: their later text changes are CSS to sanitise. */
  private styleText = new Set<number>();
  /** The recorded page's URL (last Meta event): relative URLs resolve against it. */
  private pageUrl = '';
  /** Origins the replay may load from. */
  private allowed: Set<string>;
  private cssModifiers = cssFetchModifiers();
  /** Absolute original URL → the dashboard URL of its captured copy. */
  private assets = new Map<string, string>();
  /** How many things were neutralised (read by tests; handy when looking into a recording). */
  neutralised = 0;

  /** `allowedOrigins`: where replayed resources may come from (the dashboard's and the project's origins). */
  constructor(allowedOrigins: readonly string[] = []) {
    this.allowed = origins(allowedOrigins);
  }

  /**
   * The session's captured assets: original URL → dashboard path (`/projects/N/assets/SHA256`), made absolute
   * on `dashboardOrigin`. Anything else in the map is ignored: it could point the replay anywhere.
   */
  setAssets(map: Record<string, unknown>, dashboardOrigin: string): number {
    this.assets.clear();
    for (const key of Object.keys(map || {})) {
      const path = map[key];
      if (typeof path !== 'string' || !ASSET_PATH.test(path)) continue;
      try {
        const url = new URL(key);
        if (url.protocol === 'http:' || url.protocol === 'https:') this.assets.set(url.href, dashboardOrigin + path);
      } catch (e) {
        continue; // not a URL: no recorded URL can resolve to it
      }
    }
    return this.assets.size;
  }

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
        this.styleText.clear();
        const data = e.data as { node?: SerializedNode } | undefined;
        if (data && data.node) this.walk(data.node, '');
        return e;
      }
      case EventType.IncrementalSnapshot:
        return e.data && typeof e.data === 'object' && !this.incremental(e.data as { source?: unknown }) ? null : e;
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

  /** Sanitise an incremental event's data in place; false when the event must be dropped. */
  private incremental(data: { source?: unknown }): boolean {
    switch (data.source) {
      case Source.Mutation:
        this.mutation(data as MutationData);
        return true;
      case Source.StyleSheetRule:
        this.styleSheetRule(data as StyleSheetRuleData);
        return true;
      case Source.StyleDeclaration: {
        const set = (data as { set?: { value?: unknown } }).set;
        if (set && typeof set === 'object' && typeof set.value === 'string') set.value = this.css(set.value);
        return true;
      }
      case Source.AdoptedStyleSheet: {
        const styles = (data as { styles?: unknown }).styles;
        const list = Array.isArray(styles) ? (styles as ({ rules?: StyleSheetRuleData['adds'] } | null)[]) : [];
        for (const style of list) {
          if (style && typeof style === 'object') this.styleSheetRule({ adds: style.rules });
        }
        return true;
      }
      case Source.Font: {
        // The replayer builds `new FontFace(family, buffer ? bytes : fontSource)`: a string source is CSS.
        const font = data as { buffer?: unknown; fontSource?: unknown };
        if (font.buffer) return true;
        if (typeof font.fontSource !== 'string') {
          this.neutralised++;
          return false;
        }
        font.fontSource = this.css(font.fontSource);
        return true;
      }
      case Source.CanvasMutation: {
        // Never replayed without UNSAFE_replayCanvas; its image arguments would load URLs if it were.
        const canvas = data as { commands?: unknown; args?: unknown };
        if (canvas.commands !== undefined || canvas.args !== undefined) this.neutralised++;
        canvas.commands = [];
        delete canvas.args;
        return true;
      }
      default:
        return true;
    }
  }

  private styleSheetRule(data: StyleSheetRuleData): void {
    for (const add of Array.isArray(data.adds) ? data.adds : []) {
      if (add && typeof add === 'object' && typeof add.rule === 'string') add.rule = this.css(add.rule);
    }
    if (typeof data.replace === 'string') data.replace = this.css(data.replace);
    if (typeof data.replaceSync === 'string') data.replaceSync = this.css(data.replaceSync);
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
      if (!text || typeof text.value !== 'string') continue;
      if (this.inertText.has(text.id) && text.value) {
        text.value = '';
        this.neutralised++;
      } else if (this.styleText.has(text.id)) {
        text.value = this.css(text.value);
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
      } else if ((node.type === NodeType.Text || node.type === NodeType.CDATA) && parentTag === 'script') {
        if (node.textContent) this.neutralised++;
        node.textContent = '';
        if (typeof node.id === 'number') this.inertText.add(node.id);
      } else if ((node.type === NodeType.Text || node.type === NodeType.CDATA) && localName(parentTag) === 'style') {
        if (typeof node.textContent === 'string') node.textContent = this.css(node.textContent);
        if (typeof node.id === 'number') this.styleText.add(node.id);
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
    const attrs = node.attributes;
    if (!VALID_TAG.test(tag)) {
      node.tagName = tag = 'hm-invalid';
      this.neutralised++;
    } else if (localName(tag) === 'link') {
      for (const name of Object.keys(attrs)) {
        const rel = attrs[name];
        if (name.toLowerCase() === 'rel' && typeof rel === 'string') this.replace(attrs, name, keptLinkRel(rel));
      }
      if (!isStylesheetLink(attrs)) {
        node.tagName = tag = 'hm-inert-link';
        this.neutralised++;
      }
    } else if (localName(tag) === 'meta' && isReferrerMeta(attrs)) {
      node.tagName = tag = 'hm-inert-meta';
      this.neutralised++;
    }
    if (localName(tag) === 'script') tag = 'script'; // svg:script is an SVG script
    if (typeof node.id === 'number') this.tags.set(node.id, tag);
    if (tag === 'script') {
      node.tagName = 'noscript';
      node.attributes = {};
      this.neutralised++;
      return tag;
    }
    this.attributes(attrs, tag);
    return tag;
  }

  /** Neutralise attributes in place; `tag` undefined means the element was never seen. */
  private attributes(attrs: Record<string, unknown>, tag: string | undefined): void {
    if (tag === 'script' || (tag !== undefined && INERT_TAGS.has(tag))) {
      for (const name of Object.keys(attrs)) delete attrs[name];
      return;
    }
    const local = tag === undefined ? undefined : localName(tag);
    const byTag = local === undefined ? DROPPED_ON_UNKNOWN_NODE : DROPPED_BY_TAG[local] || [];
    for (const name of Object.keys(attrs)) {
      const lname = name.toLowerCase();
      const value = attrs[name];
      if (lname.startsWith('on') || DROPPED_EVERYWHERE.has(lname) || byTag.indexOf(lname) >= 0) {
        this.drop(attrs, name);
      } else if (lname === 'style' && value && typeof value === 'object') {
        this.styleChanges(value as Record<string, unknown>);
      } else if (typeof value !== 'string') {
        continue; // null (removal), booleans and numbers
      } else if (lname === 'rr_dataurl') {
        if (!normalised(value).startsWith('data:image/')) this.drop(attrs, name);
      } else if (SVG_ANIMATION_VALUES.has(lname)) {
        if (URL_IN_ANIMATION.test(normalised(value))) this.drop(attrs, name);
      } else if (lname === 'name' && local === 'meta') {
        if (isReferrerName(value)) this.drop(attrs, name);
      } else if (lname === 'rel' && local === 'link') {
        this.replace(attrs, name, keptLinkRel(value));
      } else if (lname.endsWith('srcset')) {
        this.replace(attrs, name, this.srcset(value));
      } else if (isTargetAttribute(local, lname)) {
        this.replace(attrs, name, this.targetUrl(value));
      } else if (isUrlAttribute(lname)) {
        const safe = this.resourceUrl(value, lname);
        if (safe === null) this.drop(attrs, name);
        else this.replace(attrs, name, safe);
      } else if (CSS_ATTRIBUTES.has(lname) || PRESENTATION_URL_ATTRIBUTES.has(lname)) {
        this.replace(attrs, name, this.css(value));
      }
    }
  }

  /** rrweb's style-attribute diff: property → value, [value, priority] or false (removed). */
  private styleChanges(changes: Record<string, unknown>): void {
    for (const property of Object.keys(changes)) {
      const change = changes[property];
      if (typeof change === 'string') {
        changes[property] = this.css(change);
      } else if (Array.isArray(change) && typeof change[0] === 'string') {
        change[0] = this.css(change[0]);
      } else if (change !== false) {
        delete changes[property];
        this.neutralised++;
      }
    }
  }

  /** The URL, absolute, when the replay may fetch it: an allowed origin, `blob:`, or media `data:`; else null. */
  private resourceUrl(value: string, lname: string): string | null {
    const n = normalised(value);
    if (n === '') return value; // nothing to fetch
    if (n[0] === '#' && lname.endsWith('href')) return value; // an SVG reference into this document
    if (n.startsWith('data:')) return DANGEROUS_URL.test(n) ? null : value;
    if (n.startsWith('blob:')) return value; // blob: URLs never leave the browser
    return this.fetchedUrl(value);
  }

  /** A URL the replay will fetch: its captured copy on the dashboard when there is one, else `allowedUrl`. */
  private fetchedUrl(value: string): string | null {
    const url = this.resolved(value);
    const captured = url && this.assets.get(url.href);
    if (captured) return captured;
    return this.allowedUrl(value);
  }

  /** A link target: kept (absolute) when allowed, else `#`. */
  private targetUrl(value: string): string {
    const n = normalised(value);
    if (n === '' || n[0] === '#') return value;
    if (isDangerousUrl(value)) return BLANKED_URL;
    return this.allowedUrl(value) || BLANKED_URL;
  }

  /** `value` resolved against the recorded page, as an absolute URL, when its origin is allowed. */
  private allowedUrl(value: string): string | null {
    const url = this.resolved(value);
    return url && (url.protocol === 'http:' || url.protocol === 'https:') && this.allowed.has(url.origin)
      ? url.href
      : null;
  }

  /** `value` resolved against the recorded page (never the dashboard); null for script URLs and non-URLs. */
  private resolved(value: string): URL | null {
    if (SCRIPT_URL.test(normalised(value))) return null;
    try {
      return this.pageUrl ? new URL(value, this.pageUrl) : new URL(value);
    } catch (e) {
      return null; // relative with no page URL to resolve against, or no URL at all
    }
  }

  /** The policy for URLs in CSS (see cssurls.ts). */
  private cssUrl = (value: string, use: CssUrlUse): string | null => {
    if (use === 'namespace') return KNOWN_NAMESPACES.has(value.trim()) ? value : null;
    const n = normalised(value);
    if (n === '' || n[0] === '#') return value;
    // CSS cannot run a data: URL: fonts and images inlined as any type stay; an imported one is CSS we never saw.
    if (n.startsWith('data:')) return use === 'import' ? null : value;
    if (n.startsWith('blob:')) return value;
    return this.fetchedUrl(value);
  };

  private srcset(value: string): string {
    return srcsetCandidates(value)
      .map(({ url, descriptors }) => {
        const safe = url ? this.resourceUrl(url, 'srcset') : null;
        return safe ? (descriptors ? `${safe} ${descriptors}` : safe) : '';
      })
      .filter(Boolean)
      .join(', ');
  }

  private css(value: string): string {
    const safe = rewriteCssUrls(value, this.cssUrl, this.cssModifiers);
    if (safe !== value) this.neutralised++;
    return safe;
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
