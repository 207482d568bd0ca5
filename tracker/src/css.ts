/**
 * Lossless stylesheet text for the recording. build.mjs routes rrweb's stringifyStylesheet and
 * stringifyRule through here, because the CSSOM text they read loses rules (rrweb issues 1322, 1667):
 * a var() shorthand followed by a longhand it resets serialises as empty longhands (`padding-top: ;`),
 * and some longhand pairs as invalid shorthands (`border-block: initial initial`).
 */
import { safe } from './util';

/**
 * Rules' source text as script gave it (insertRule, replace, replaceSync), with the rule's cssText then: a
 * constructed sheet has no other text, and its CSSOM keeps nothing of a var() shorthand that a later
 * longhand resets. Used while the rule still serialises as it did (nothing edited it since).
 */
const given = new WeakMap<CSSRule, [string, string]>();
let watching = false;

/**
 * Wrap the methods script builds sheets with, once, as the tracker loads: sheets made before that
 * (the tracker tag placed after the page's own scripts) go through `ruleText` as before.
 */
export function watchSheets(): void {
  if (watching) return;
  watching = true;
  const proto = CSSStyleSheet.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const wrap = (name: string, after: (sheet: CSSStyleSheet, text: string, result: unknown) => void): void => {
    const original = proto[name];
    if (original)
      proto[name] = function (this: CSSStyleSheet, ...args: unknown[]) {
        const result = original.apply(this, args); // the page's own call: its errors are its own
        safe(after)(this, String(args[0]), result);
        return result;
      };
  };
  wrap('insertRule', (sheet, text, index) => remember(sheet.cssRules[index as number], text));
  wrap('replaceSync', split);
  wrap('replace', (sheet, text, done) => (done as Promise<unknown>).then(() => split(sheet, text), () => 0));
}

function remember(rule: CSSRule | undefined, text: string): void {
  if (rule) given.set(rule, [text, rule.cssText]);
}

/** A sheet's text cut into its top-level rules (braces outside strings and comments), one per CSSRule. */
function split(sheet: CSSStyleSheet, text: string): void {
  const rules: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c == '\\') i++;
    else if (c == '"' || c == "'") i = Math.max(i, text.indexOf(c, i + 1));
    else if (c == '/' && text[i + 1] == '*') i = text.indexOf('*/', i + 2) + 1 || text.length;
    else if (c == '{') depth++;
    else if ((c == '}' && !--depth) || (c == ';' && !depth)) {
      rules.push(text.slice(start, i + 1).trim());
      start = i + 1;
    }
  }
  const live = sheet.cssRules;
  if (rules.length == live.length) for (let i = 0; i < live.length; i++) remember(live[i], rules[i]);
}

/** A detached declaration block: re-parses declaration text, and expands shorthands into longhands. */
let probe: CSSStyleDeclaration | undefined;
/** Every property name the browser knows (shorthands included), read off a declaration block once. */
let names: string[] | undefined;
/** Declarations the CSSOM no longer holds, counted so a linked sheet that lost some can stay a link. */
let lost = 0;

const SUSPECT = /:\s*[;!]|initial|unset|revert|inherit/;

type Stringify = (sheet: CSSStyleSheet) => string | null;
type Absolutify = (css: string, href: string) => string;

/**
 * A <style> whose rules are still the ones its text parses to keeps its text: the only copy that
 * holds every declaration. Other sheets go rule by rule (`rrweb`, which calls `ruleText`); a linked
 * sheet that lost declarations on the way is left as a link (null), which the replay loads itself.
 */
export function sheetText(sheet: CSSStyleSheet, rrweb: Stringify, absolutify: Absolutify): string | null {
  const node = sheet.ownerNode as Element | null;
  const text = node && node.nodeName == 'STYLE' && node.textContent;
  if (text && parsesTo(text, sheet.cssRules)) return absolutify(text, node.baseURI);
  const before = lost;
  const css = rrweb(sheet);
  return lost > before && node && node.nodeName == 'LINK' ? null : css;
}

/** False when script changed the sheet (insertRule, deleteRule, a rule's style) or its text has @import. */
function parsesTo(text: string, rules: CSSRuleList): boolean {
  try {
    const fresh = new CSSStyleSheet();
    fresh.replaceSync(text); // drops @import: those sheets then go rule by rule
    const parsed = fresh.cssRules;
    if (parsed.length != rules.length) return false;
    for (let i = 0; i < parsed.length; i++) if (parsed[i].cssText != rules[i].cssText) return false;
    return true;
  } catch (e) {
    return false; // no constructable stylesheets in this browser
  }
}

/** A rule's text, rebuilt only where the CSSOM's own serialisation would not parse back the same. */
export function ruleText(rule: CSSRule): string {
  const css = rule.cssText;
  const kept = given.get(rule);
  if (kept && kept[1] == css) return kept[0];
  const style = (rule as CSSStyleRule).style;
  const kids = (rule as CSSGroupingRule).cssRules; // @media, @supports, @layer, @container, nesting
  let body = style ? declarations(style) : '';
  let changed = style && body != style.cssText;
  if (kids) {
    for (let i = 0; i < kids.length; i++) {
      const kid = ruleText(kids[i]);
      changed = changed || kid != kids[i].cssText;
      body += kid;
    }
  }
  if (!changed) return css;
  if (style && css == style.cssText) return body; // nested declarations: no prelude, no braces
  return (rule.type == 1 ? (rule as CSSStyleRule).selectorText : css.slice(0, css.indexOf('{'))) + '{' + body + '}';
}

/**
 * The block's text when it parses back to the same declarations; else one declaration per
 * longhand, each pending-substitution group (a var() shorthand) written as its shorthand.
 */
function declarations(style: CSSStyleDeclaration): string {
  const css = style.cssText;
  // Parsing every block again would double the cost of a snapshot: only blocks with an empty value or a
  // CSS-wide keyword (what the lossy serialisations look like) are checked.
  if (!SUSPECT.test(css)) return css;
  const p = (probe = probe || document.createElement('p').style);
  p.cssText = css;
  if (p.cssText == css) return css;
  let out = '';
  const covered: string[] = [];
  for (let i = 0; i < style.length; i++) {
    let name = style[i];
    if (covered.indexOf(name) >= 0) continue;
    if (!style.getPropertyValue(name) && name[1] != '-') {
      const shorthand = shorthandOf(style, name, p);
      if (!shorthand) {
        lost++;
        continue;
      }
      name = shorthand;
      covered.push(...Array.from(p));
    }
    out += name + ': ' + style.getPropertyValue(name) + (style.getPropertyPriority(name) ? ' !important; ' : '; ');
  }
  return out;
}

/**
 * The shorthand a longhand with no value of its own was declared through, if the block still knows
 * its value (it does unless a later longhand reset part of it). Leaves its longhands in `p`.
 */
function shorthandOf(style: CSSStyleDeclaration, longhand: string, p: CSSStyleDeclaration): string | undefined {
  if (!names) {
    names = [];
    for (const key in p) names.push(key.replace(/[A-Z]/g, '-$&').toLowerCase());
  }
  for (const name of names) {
    const value = style.getPropertyValue(name);
    if (value) {
      p.cssText = '';
      p.setProperty(name, value);
      if (Array.from(p).indexOf(longhand) >= 0) return name;
    }
  }
  return undefined;
}
