/**
 * What the optional chunks share: the host the core hands them (features.ts), the never-throw guard, a
 * per-minute budget, and scrubbing of what visitors typed out of recorded text. Typed values are masked in
 * recordings, so they must not come back through a console message or a URL: the values of the page's
 * fields now, and of the last ones typed (fields since cleared or removed) are replaced by stars, and so
 * are e-mail addresses, card numbers and long tokens.
 */
import type { FeatureHost } from './features';

export type { FeatureHost };

/** The core's host, once hm.js runs on this page with the feature switched on. */
export const host = (): FeatureHost | undefined =>
  ((window as unknown as { hitmetrix?: { _host?: FeatureHost } }).hitmetrix || {})._host;

/** Run `fn` and swallow what it throws: a chunk never throws into the page. */
export function guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return function (this: unknown, ...args: A) {
    try {
      fn.apply(this, args);
    } catch (e) {
      /* the page goes on; the entry is lost */
    }
  };
}

/** At most `max` entries a minute: true while under it; `dropped` counts the others since the last taken. */
export function budget(max: number): { take(): boolean; dropped: number } {
  let windowStartMs = 0;
  let taken = 0;
  const b = {
    dropped: 0,
    take(): boolean {
      const nowMs = Date.now();
      if (nowMs - windowStartMs >= 60000) {
        windowStartMs = nowMs;
        taken = 0;
      }
      if (taken >= max) {
        b.dropped++;
        return false;
      }
      taken++;
      return true;
    },
  };
  return b;
}

/** Shorter typed values are left: replacing every "ab" would turn messages into stars and hide little. */
const MIN_VALUE_CHARS = 3;
const MAX_VALUE_CHARS = 1000;
const MAX_RECENT_VALUES = 50;
/** Fields whose value is page text or a constant (a button's label, a checkbox's "on"), not typed. */
const NOT_TYPED = /^(submit|button|reset|image|checkbox|radio|hidden|file|range|color)$/;
const EMAIL = /[\w.+-]+@[\w-]+(\.[\w-]+)+/g;
const CARD = /\b\d(?:[ -]?\d){12,18}\b/g;
/** Letters and digits mixed, 24 or more: API keys, session ids, JWT parts, hashes. */
const TOKEN = /\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{24,}\b/g;

const recent: string[] = [];
const lastOf = new WeakMap<EventTarget, string>();

function typed(el: unknown): string | null {
  if (el instanceof HTMLInputElement) return NOT_TYPED.test(el.type) ? null : el.value;
  if (el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement) return el.value;
  if (el instanceof HTMLElement && el.isContentEditable) return el.textContent;
  return null;
}

/** Remember what is typed, from the first keystroke: fields in shadow roots too (input events are composed). */
export function watchFields(): void {
  const note = guard((e: Event) => {
    const el = e.composedPath()[0];
    const value = (typed(el) || '').slice(0, MAX_VALUE_CHARS);
    const before = lastOf.get(el);
    // Typing "secret" gives "sec", "secr" …: a field's growing (or shrinking) value replaces its last one.
    if (before !== undefined && (value.indexOf(before) === 0 || before.indexOf(value) === 0)) {
      const i = recent.indexOf(before);
      if (i >= 0) recent.splice(i, 1);
    }
    lastOf.set(el, value);
    if (value.length < MIN_VALUE_CHARS || recent.indexOf(value) >= 0) return;
    recent.push(value);
    if (recent.length > MAX_RECENT_VALUES) recent.shift();
  });
  addEventListener('input', note, true);
  addEventListener('change', note, true);
}

/** True when the digits pass the card-number checksum (Luhn): other long numbers (times, ids) stay. */
function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = +digits[digits.length - 1 - i];
    if (i % 2 && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

const stars = (s: string): string => s.replace(/\S/g, '*');

/** `text` without the values of the page's fields, recently typed values, e-mails, card numbers and tokens. */
export function redact(text: string): string {
  const values = recent.slice();
  const fields = document.querySelectorAll('input,textarea,select,[contenteditable]');
  for (let i = 0; i < fields.length; i++) {
    const value = typed(fields[i]);
    if (value && value.length >= MIN_VALUE_CHARS) values.push(value.slice(0, MAX_VALUE_CHARS));
  }
  // Longest first: a value inside another one must not leave the rest of the longer one.
  values.sort((a, b) => b.length - a.length);
  for (const value of values) if (text.indexOf(value) >= 0) text = text.split(value).join(stars(value));
  return text
    .replace(EMAIL, stars)
    .replace(CARD, (n) => (luhn(n.replace(/\D/g, '')) ? stars(n) : n))
    .replace(TOKEN, stars);
}

/** `s` cut to `max` characters, saying so. */
export const clip = (s: string, max: number): string => (s.length > max ? s.slice(0, max - 1) + '…' : s);
