/** Small shared helpers: the never-throw guard, ids, storage that may fail, clipping. */

/** Mutable tracker-wide state: `on` is false under DNT / opt-out, `errors` counts what `safe` swallowed. */
export const state = { on: false, errors: 0 };

/**
 * Wrap a function so it never throws into the host page (STYLE rule 12).
 * Swallowed errors are counted and exposed as `window.hitmetrix._errors`.
 */
export function safe<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R | undefined {
  return function (this: unknown, ...args: A) {
    try {
      return fn.apply(this, args);
    } catch (e) {
      state.errors++;
      return undefined;
    }
  };
}

/** setTimeout whose callback is guarded. */
export const later = (fn: () => void, ms: number): number => setTimeout(safe(fn), ms) as unknown as number;

export const now = (): number => Date.now();

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** 21 random chars of [A-Za-z0-9_-] (126 bits) from crypto.getRandomValues. */
export function randomId(): string {
  let id = '';
  crypto.getRandomValues(new Uint8Array(21)).forEach((b) => (id += ALPHABET[b & 63]));
  return id;
}

/** A random (version 4) UUID, lowercase 8-4-4-4-12 hex; crypto.randomUUID exists only in secure contexts. */
export function uuid(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let hex = '';
  b.forEach((x) => (hex += (x + 256).toString(16).slice(1)));
  return hex.replace(/(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
}

/** True for ids the capture API accepts (8–64 chars of [A-Za-z0-9_-]). */
export const validId = (s: unknown): s is string => typeof s === 'string' && /^[\w-]{8,64}$/.test(s);

export type StorageKind = 'localStorage' | 'sessionStorage';

/** Read a storage key; storage that is missing or throws (privacy modes, sandboxed frames) reads as null. */
export function load(kind: StorageKind, key: string): string | null {
  try {
    return window[kind].getItem(key);
  } catch (e) {
    return null;
  }
}

/** Write (or with `null` remove) a storage key; failures are expected and ignored. */
export function save(kind: StorageKind, key: string, value: string | null): void {
  try {
    if (value === null) window[kind].removeItem(key);
    else window[kind].setItem(key, value);
  } catch (e) {
    /* storage full or forbidden: ids then live in memory only */
  }
}

/** String(s) cut to at most `max` characters. */
export const clip = (s: unknown, max: number): string => (s == null ? '' : String(s)).slice(0, max);

/** UTF-8 byte length of a string. */
export const byteLength = (s: string): number => new Blob([s]).size;
