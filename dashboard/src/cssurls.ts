/**
 * Finds every URL in a piece of CSS the way a browser's tokenizer does (CSS Syntax Level 3) and
 * lets a policy keep, rewrite or block it.
 *
 * A regex is not enough for hostile CSS: `\75 rl(…)` is a `url(` to the browser, comments and
 * escapes can split what a regex looks for, and `image-set()` and `@import` take bare strings.
 * Only what can make the browser fetch is looked at: `url(…)` (quoted or not), strings directly
 * inside `src()`, `image()`, `image-set()` and `-webkit-image-set()`, and the string of an
 * `@import` (and of an `@namespace`, which the policy is told about). Everything else keeps its
 * exact text, so a kept stylesheet replays as it was recorded.
 */

/**
 * What the URL is for: a resource of a rule (image, font, cursor…), a whole imported stylesheet,
 * or the name of an `@namespace` (never fetched).
 */
export type CssUrlUse = 'resource' | 'import' | 'namespace';

/** The URL to use instead (the same string keeps the original text), or null to block it. */
export type CssUrlPolicy = (url: string, use: CssUrlUse) => string | null;

/** What a blocked resource URL becomes: fetches nothing, and keeps the declaration valid. */
export const BLOCKED_CSS_URL = 'about:invalid';

/** Functions whose bare string arguments are image URLs. */
const IMAGE_FUNCTIONS = new Set(['image', 'image-set', '-webkit-image-set', 'src']);
/** What may sit directly in an image function besides strings; anything else (var(), attr(), env(), if()…) could
 * hand it a string we never see, so the whole function is blocked. */
const IMAGE_ARGUMENT_FUNCTIONS = new RegExp(
  '^(?:url|type|(?:-webkit-)?(?:image-set|cross-fade)|(?:-webkit-)?(?:repeating-)?(?:linear|radial|conic)-gradient' +
    '|calc|min|max|clamp)$',
);
/** URLs that fetch nothing (or nothing over the network), so their referrer does not matter. */
const LOCAL_URL = /^\s*(?:#|data:|blob:|about:|$)/i;
const BLOCK_OPENERS: Record<string, string> = { '(': ')', '[': ']', '{': '}' };

interface Edit {
  start: number;
  end: number;
  text: string;
}

/** An at-rule whose prelude holds URLs we treat specially, from its `@` to its `;`, `{` or the end. */
interface AtRule {
  kind: 'import' | 'namespace';
  start: number;
  depth: number;
  firstEdit: number;
  blocked: boolean;
}

const isNewline = (c: string): boolean => c === '\n' || c === '\r' || c === '\f';
const isWhitespace = (c: string): boolean => c === ' ' || c === '\t' || isNewline(c);
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isHex = (c: string): boolean => isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
// NUL counts as a name code point: the browser reads it as U+FFFD.
const isNameStart = (c: string): boolean =>
  (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || (c !== '' && (c >= '\u0080' || c === '\u0000'));
const isName = (c: string): boolean => isNameStart(c) || isDigit(c) || c === '-';
const isNonPrintable = (c: string): boolean =>
  (c >= '\u0000' && c <= '\u0008') || c === '\u000b' || (c >= '\u000e' && c <= '\u001f') || c === '\u007f';

/** A CSS string literal (double-quoted) that the tokenizer reads back as exactly `value`. */
export function cssString(value: string): string {
  // eslint-disable-next-line no-control-regex
  const escaped = value.replace(/[\\"\u0000-\u001f\u007f]/g, (c) =>
    c === '\u0000' ? '\ufffd' : `\\${c.charCodeAt(0).toString(16)} `,
  );
  return `"${escaped}"`;
}

class Tokenizer {
  pos = 0;
  constructor(readonly css: string) {}

  at(offset = 0): string {
    return this.css.charAt(this.pos + offset);
  }

  validEscape(offset = 0): boolean {
    return this.at(offset) === '\\' && !isNewline(this.at(offset + 1));
  }

  startsIdent(offset = 0): boolean {
    const c = this.at(offset);
    if (c === '-') {
      return isNameStart(this.at(offset + 1)) || this.at(offset + 1) === '-' || this.validEscape(offset + 1);
    }
    return isNameStart(c) || this.validEscape(offset);
  }

  startsNumber(): boolean {
    const c = this.at();
    if (c === '+' || c === '-') return isDigit(this.at(1)) || (this.at(1) === '.' && isDigit(this.at(2)));
    if (c === '.') return isDigit(this.at(1));
    return isDigit(c);
  }

  /** After a backslash that starts a valid escape: the code point it stands for. */
  escape(): string {
    this.pos++; // the backslash
    if (this.pos >= this.css.length) return '\ufffd';
    if (isHex(this.at())) {
      let hex = '';
      while (hex.length < 6 && isHex(this.at())) hex += this.css.charAt(this.pos++);
      if (this.at() === '\r' && this.at(1) === '\n') this.pos += 2;
      else if (isWhitespace(this.at())) this.pos++;
      const code = parseInt(hex, 16);
      const invalid = code === 0 || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff;
      return invalid ? '\ufffd' : String.fromCodePoint(code);
    }
    const code = this.css.codePointAt(this.pos)!;
    const char = String.fromCodePoint(code);
    this.pos += char.length;
    return char;
  }

  name(): string {
    let out = '';
    for (;;) {
      const c = this.at();
      if (isName(c)) {
        out += c === '\u0000' ? '\ufffd' : c;
        this.pos++;
      } else if (this.validEscape()) {
        out += this.escape();
      } else {
        return out;
      }
    }
  }

  /** A string token from its opening quote; `bad` when an unescaped newline ends it. */
  string(): { value: string; bad: boolean } {
    const quote = this.css.charAt(this.pos++);
    let value = '';
    while (this.pos < this.css.length) {
      const c = this.at();
      if (c === quote) {
        this.pos++;
        return { value, bad: false };
      }
      if (isNewline(c)) return { value, bad: true }; // the newline is not part of the (bad) string
      if (c === '\\') {
        if (this.pos + 1 >= this.css.length) {
          this.pos++;
        } else if (isNewline(this.at(1))) {
          this.pos += this.at(1) === '\r' && this.at(2) === '\n' ? 3 : 2; // an escaped newline continues the line
        } else {
          value += this.escape();
        }
        continue;
      }
      value += c === '\u0000' ? '\ufffd' : c;
      this.pos++;
    }
    return { value, bad: false };
  }

  /** The rest of an unquoted `url(` token, after its opening whitespace; `bad` for a bad-url token. */
  unquotedUrl(): { value: string; bad: boolean } {
    let value = '';
    while (this.pos < this.css.length) {
      const c = this.at();
      if (c === ')') {
        this.pos++;
        return { value, bad: false };
      }
      if (isWhitespace(c)) {
        while (isWhitespace(this.at())) this.pos++;
        if (this.at() === ')' || this.pos >= this.css.length) continue;
        this.badUrlRemnants();
        return { value, bad: true };
      }
      if (c === '"' || c === "'" || c === '(' || isNonPrintable(c)) {
        this.badUrlRemnants();
        return { value, bad: true };
      }
      if (c === '\\') {
        if (this.validEscape()) {
          value += this.escape();
          continue;
        }
        this.badUrlRemnants();
        return { value, bad: true };
      }
      value += c;
      this.pos++;
    }
    return { value, bad: false };
  }

  badUrlRemnants(): void {
    while (this.pos < this.css.length) {
      if (this.at() === ')') {
        this.pos++;
        return;
      }
      if (this.validEscape()) this.escape();
      else this.pos++;
    }
  }

  number(): void {
    if (this.at() === '+' || this.at() === '-') this.pos++;
    while (isDigit(this.at())) this.pos++;
    if (this.at() === '.' && isDigit(this.at(1))) {
      this.pos++;
      while (isDigit(this.at())) this.pos++;
    }
    const e = this.at();
    const signed = (this.at(1) === '+' || this.at(1) === '-') && isDigit(this.at(2));
    if ((e === 'e' || e === 'E') && (isDigit(this.at(1)) || signed)) {
      this.pos += 2;
      while (isDigit(this.at())) this.pos++;
    }
    if (this.startsIdent()) this.name(); // a dimension: `10url(` is the unit "url" and a plain parenthesis
    else if (this.at() === '%') this.pos++;
  }
}

/** An open block (`(`, `[`, `{`) or function, innermost last. */
interface Frame {
  kind: string; // '(' | '[' | '{' | 'fn'
  name: string; // lower-case function name
  start: number;
  firstEdit: number;
  url?: string; // the string of a url()/src() function
  tainted: boolean; // an image function with an argument we cannot read (var(), attr()…)
}

/**
 * `css` with every URL passed through `policy`. A URL the browser would fetch is rewritten as
 * `url("…"` + `fetchModifiers` + `)` (recorded modifiers, such as `referrer-policy(unsafe-url)`,
 * are dropped); a blocked one becomes `url("about:invalid"` + `fetchModifiers` + `)`, and an
 * `@import` whose URL is blocked is removed up to its `;`. URLs that fetch nothing (`data:`,
 * `blob:`, `#…`) keep their text.
 */
export function rewriteCssUrls(css: string, policy: CssUrlPolicy, fetchModifiers = ''): string {
  if (typeof css !== 'string' || (css.indexOf('(') < 0 && css.indexOf('@') < 0)) return css;
  const t = new Tokenizer(css);
  const edits: Edit[] = [];
  const stack: Frame[] = [];
  let atRule: AtRule | null = null;

  const endAtRule = (end: number): void => {
    if (atRule && atRule.blocked && atRule.kind === 'import') {
      edits.length = atRule.firstEdit;
      edits.push({ start: atRule.start, end, text: '' });
    }
    atRule = null;
  };
  const use = (): CssUrlUse => (atRule && stack.length === atRule.depth ? atRule.kind : 'resource');
  const blocked = (start: number, end: number): void => {
    if (atRule) atRule.blocked = true;
    // Chromium still makes (and fails) a request for it: with the modifiers, one that names nobody.
    edits.push({ start, end, text: `url(${cssString(BLOCKED_CSS_URL)}${fetchModifiers})` });
  };

  /** A URL written at [start, end) (a url() token or function, or a bare string): kept, rewritten or blocked. */
  const found = (url: string | undefined, start: number, end: number): void => {
    const how = use();
    const safe = url === undefined ? null : policy(url, how);
    if (safe === null) return blocked(start, end);
    const fetched = !LOCAL_URL.test(safe) && how !== 'namespace';
    if (safe === url && !fetched) return; // fetches nothing: the recorded text stays
    edits.push({ start, end, text: `url(${cssString(safe)}${fetched ? fetchModifiers : ''})` });
  };

  const close = (frame: Frame, end: number): void => {
    if (frame.kind !== 'fn') return;
    if (frame.name === 'url' || frame.name === 'src') {
      edits.length = frame.firstEdit; // the whole function is rewritten from its string alone
      found(frame.url, frame.start, end);
    } else if (IMAGE_FUNCTIONS.has(frame.name) && frame.tainted) {
      edits.length = frame.firstEdit;
      blocked(frame.start, end);
    }
  };

  while (t.pos < css.length) {
    const start = t.pos;
    const c = t.at();
    const top = stack.length ? stack[stack.length - 1] : null;
    if (c === '/' && t.at(1) === '*') {
      const end = css.indexOf('*/', start + 2);
      t.pos = end < 0 ? css.length : end + 2;
    } else if (c === '"' || c === "'") {
      const { value, bad } = t.string();
      if (top && top.kind === 'fn' && (top.name === 'url' || top.name === 'src')) {
        if (!bad && top.url === undefined) top.url = value;
      } else if (top && top.kind === 'fn' && IMAGE_FUNCTIONS.has(top.name)) {
        if (!bad) found(value, start, t.pos); // a bare string in image-set() is a URL
      } else if (atRule && stack.length === atRule.depth && !bad) {
        found(value, start, t.pos); // @import "…", @namespace "…"
      }
    } else if (isWhitespace(c)) {
      while (isWhitespace(t.at())) t.pos++;
    } else if (t.startsNumber()) {
      t.number();
    } else if (c === '-' && t.at(1) === '-' && t.at(2) === '>') {
      t.pos += 3; // CDC
    } else if (t.startsIdent()) {
      const name = t.name().toLowerCase();
      if (t.at() !== '(') continue;
      t.pos++;
      if (name === 'url') {
        let ahead = 0;
        while (isWhitespace(t.at(ahead))) ahead++;
        if (t.at(ahead) !== '"' && t.at(ahead) !== "'") {
          t.pos += ahead;
          const { value, bad } = t.unquotedUrl();
          if (!bad) found(value, start, t.pos);
          continue;
        }
      }
      // A string could reach an image function through anything but these: its argument is unreadable.
      if (top && top.kind === 'fn' && IMAGE_FUNCTIONS.has(top.name) && !IMAGE_ARGUMENT_FUNCTIONS.test(name)) {
        top.tainted = true;
      }
      stack.push({ kind: 'fn', name, start, firstEdit: edits.length, tainted: false });
    } else if (c === '@' && t.startsIdent(1)) {
      t.pos++;
      const keyword = t.name().toLowerCase();
      // Inside a prelude an at-keyword is just part of it (the rule is then invalid, as browsers see it).
      if (atRule === null && (keyword === 'import' || keyword === 'namespace')) {
        atRule = { kind: keyword, start, depth: stack.length, firstEdit: edits.length, blocked: false };
      }
    } else if (c === '#' && (isName(t.at(1)) || t.validEscape(1))) {
      t.pos++;
      t.name();
    } else if (c === '\\') {
      t.pos++; // not a valid escape (a backslash before a newline): a delimiter
    } else {
      t.pos++;
      if (c in BLOCK_OPENERS) {
        if (c === '{' && atRule && stack.length === atRule.depth) atRule = null; // the prelude ended: not an import
        stack.push({ kind: c, name: '', start, firstEdit: edits.length, tainted: false });
      } else if (c === ')' || c === ']' || c === '}') {
        const opener = top ? (top.kind === 'fn' ? '(' : top.kind) : '';
        if (top && BLOCK_OPENERS[opener] === c) {
          stack.pop();
          close(top, t.pos);
          if (atRule && stack.length < atRule.depth) endAtRule(start); // the enclosing block closed
        }
      } else if (c === ';' && atRule && stack.length === atRule.depth) {
        endAtRule(t.pos);
      }
    }
  }
  // The end of the input closes whatever is open, as it does for the browser.
  while (stack.length) close(stack.pop()!, css.length);
  endAtRule(css.length);
  if (!edits.length) return css;
  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let last = 0;
  for (const edit of edits) {
    out += css.slice(last, edit.start) + edit.text;
    last = edit.end;
  }
  return out + css.slice(last);
}
