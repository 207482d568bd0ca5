/**
 * What must never leave the browser. rrweb masks input values and the text of masked elements,
 * but not hidden or file inputs, value attributes and textarea text whose live value is empty,
 * attributes of masked elements, nor text typed into designMode documents or masked frames. So
 * every rrweb event is also scrubbed here, judged by the live nodes it describes; and URLs keep
 * their query keys but not their values, except for allowed keys.
 */
import { record } from '@rrweb/record';

/** Masked areas; textareas, options and outputs hold what visitors typed or chose, so are masked too. */
export const MASK = '.hm-mask,[data-hm-mask],[contenteditable]:not([contenteditable=false]),textarea,option,output';
export const BLOCK = '.hm-block,[data-hm-block]';
/** Attributes that carry layout or resources, not words: kept inside masked areas, all others masked. */
const LAYOUT = /^(class|id|style|type|rel|media|sizes|src|srcset|width|height|dir|tabindex|hidden|disabled|checked|selected|multiple|colspan|rowspan|viewbox|d|points|fill|stroke[\w-]*|transform|[xyr][12]?|c[xy]|r[xy]|xmlns(:\w+)?|rr_\w+|_cssText)$/i;
/** Links to a stylesheet or an SVG symbol: the replay needs them to style and draw the page. */
const RESOURCE_LINK = /^(link|use)$/;
/** What a blocked element keeps for its placeholder. */
const PLACEHOLDER = /^(class|id|rr_width|rr_height)$/;
const FIELD = /^(input|textarea|select|option)$/;
/** Inputs whose value is the button's label, page text rather than something typed. */
const BUTTON = /^(submit|button|reset|image)$/;

const CLEAR = 0;
const MASKED = 1;
const BLOCKED = 2;

let maskAll = false;
let allowedKeys: string[] = [];

export function configure(maskText: boolean, allowQuery: string[]): void {
  maskAll = maskText;
  allowedKeys = allowQuery;
}

const stars = (s: string): string => '*'.repeat(s.length);

/** A URL without the values of its query (and key=value fragment) parameters, except utm_* and allowed keys. */
export function cleanUrl(url: string): string {
  const i = url.search(/[?#]/);
  return i < 0
    ? url
    : url.slice(0, i) +
        url.slice(i).replace(/([?#&;])([^=&#;]*)=([^&#;]*)/g, (all, sep: string, key: string, value: string) =>
          !value || /^utm_/i.test(key) || allowedKeys.indexOf(key) >= 0 ? all : sep + key + '=*',
        );
}

/** A node's own privacy level: blocked or masked element, or an editable (designMode) document. */
function own(n: Node): number {
  if (n.nodeType === 1) return (n as Element).matches(BLOCK) ? BLOCKED : (n as Element).matches(MASK) ? MASKED : CLEAR;
  return n.nodeType === 9 && (n as Document).designMode === 'on' ? MASKED : CLEAR;
}

/** Levels of the nodes seen while scrubbing one event: a mutation's nodes share most ancestors. */
let levels = new Map<Node, number>();

/** The level of a live node: the highest of its own and its ancestors', through shadow roots and frames. */
function level(n: Node | null | undefined): number {
  const path: Node[] = [];
  let s = maskAll ? MASKED : CLEAR;
  for (; n; n = n.nodeType === 11 ? (n as ShadowRoot).host : n.nodeType === 9 ? frameOf(n as Document) : n.parentNode) {
    const known = levels.get(n);
    if (known !== undefined) {
      s = known;
      break;
    }
    path.push(n);
  }
  for (let i = path.length; i--; ) levels.set(path[i], (s = Math.max(s, own(path[i]))));
  return s;
}

function frameOf(doc: Document): Element | null {
  try {
    return doc.defaultView && doc.defaultView.frameElement;
  } catch (e) {
    return null; // a cross-origin parent
  }
}

const liveNode = (id: number): Node | null => record.mirror.getNode(id) as Node | null;

function scrubText(text: string, s: number, parent: Node | null | undefined): string {
  // CSS of a <style> is layout, and rrweb already replaced script text.
  if (!s || !text || (parent && /^(STYLE|SCRIPT)$/.test(parent.nodeName))) return text;
  return s === BLOCKED ? '' : text.replace(/\S/g, '*');
}

type Attributes = Record<string, unknown>;

function scrubAttributes(attributes: Attributes, s: number, el: Node | null): void {
  const tag = el ? el.nodeName.toLowerCase() : '';
  for (const name in attributes) {
    const value = attributes[name];
    if (s === BLOCKED) {
      if (!PLACEHOLDER.test(name)) delete attributes[name];
    } else if (
      typeof value === 'string' &&
      value &&
      ((s && !LAYOUT.test(name) && !(RESOURCE_LINK.test(tag) && /href$/.test(name))) ||
        (name === 'value' && (!el || (FIELD.test(tag) && !BUTTON.test((el as HTMLInputElement).type)))))
    ) {
      attributes[name] = stars(value);
    }
  }
}

/** A serialized node as rrweb emits it (the fields read here). */
interface SNode {
  type: number;
  id: number;
  attributes?: Attributes;
  childNodes?: SNode[];
  textContent?: string;
}

/** Scrub a serialized subtree whose parent is at level `s` (its own level is read from the live node). */
function walk(sn: SNode, s: number, parent?: Node | null): void {
  const el = liveNode(sn.id);
  if (el) s = Math.max(s, own(el));
  if (sn.attributes) scrubAttributes(sn.attributes, s, el);
  if (typeof sn.textContent === 'string') sn.textContent = scrubText(sn.textContent, s, parent);
  if (sn.childNodes) for (const child of sn.childNodes) walk(child, s, el);
}

interface Mutations {
  adds?: { parentId: number; node: SNode }[];
  texts?: { id: number; value: string }[];
  attributes?: { id: number; attributes: Attributes }[];
}

/** An rrweb event as emitted, narrowed to what is scrubbed. */
interface Recorded {
  type: number;
  data?: {
    source?: number;
    href?: string;
    node?: SNode;
    text?: string;
  } & Mutations;
}

/** Mask, in place, whatever private data an rrweb event carries. */
export function scrub(e: Recorded): void {
  const d = e.data;
  if (!d) return;
  levels = new Map();
  if (e.type === 4 && d.href) d.href = cleanUrl(d.href); // Meta
  if (e.type === 2 && d.node) walk(d.node, maskAll ? MASKED : CLEAR); // FullSnapshot
  if (e.type !== 3) return; // IncrementalSnapshot below
  if (d.source === 5 && typeof d.text === 'string') d.text = stars(d.text); // Input: always masked
  if (d.source !== 0) return; // Mutation below
  for (const add of d.adds || []) {
    const parent = liveNode(add.parentId);
    walk(add.node, level(parent), parent);
  }
  for (const text of d.texts || []) {
    const node = liveNode(text.id);
    text.value = scrubText(text.value, node ? level(node) : MASKED, node && node.parentNode);
  }
  for (const change of d.attributes || []) {
    const el = liveNode(change.id);
    scrubAttributes(change.attributes, el ? level(el) : MASKED, el);
  }
}
