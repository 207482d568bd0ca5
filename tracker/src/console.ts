/**
 * The console feature (hm-console.js, loaded when the project records the console): console.log / info /
 * warn / error calls and uncaught errors become `hm-console` custom events of the recording, so that the
 * replay's Console pane shows them at their moment. Bounded (arguments, message and stack length, entries
 * a minute) and scrubbed of typed values, e-mails, card numbers and tokens (redact.ts). The page's own
 * console keeps working as before: its call runs first, whatever happens here.
 */
import { budget, clip, guard, host, redact, watchFields } from './redact';

const TAG = 'hm-console';
const LEVELS = ['log', 'info', 'warn', 'error'] as const;
const MAX_ARGS = 10;
const MAX_MESSAGE_CHARS = 2000;
const MAX_STACK_CHARS = 3000;
const MAX_STACK_FRAMES = 20;
const MAX_ENTRIES_PER_MINUTE = 120;
const MAX_DEPTH = 2;
const MAX_KEYS = 20;

type Level = (typeof LEVELS)[number];

interface ConsoleEntry {
  level: Level;
  message: string;
  stack?: string;
  /** An error nothing caught (window error / unhandled rejection), not a console call. */
  uncaught?: boolean;
  /** Entries left out since the previous one: over the budget of a minute. */
  dropped?: number;
}

const limit = budget(MAX_ENTRIES_PER_MINUTE);
/** This chunk's own URL: its frames are left out of stacks. */
const self = (document.currentScript as HTMLScriptElement | null)?.src || 'hm-console.js';
/** Set while an entry is made: a getter or toString that logs must not log itself again. */
let busy = false;

/** One argument as text, objects shown a few levels and keys deep. */
function show(value: unknown, depth: number): string {
  if (typeof value === 'string') return depth ? JSON.stringify(value) : value;
  if (typeof value === 'function') return 'ƒ ' + (value.name || 'anonymous') + '()';
  if (value === null || typeof value !== 'object') return String(value); // numbers, symbols, bigints, undefined
  if (value instanceof Error) return value.name + ': ' + value.message;
  if (value instanceof Element) {
    return '<' + value.tagName.toLowerCase() + (value.id ? '#' + value.id : '') + '>';
  }
  const array = Array.isArray(value);
  if (depth >= MAX_DEPTH) return array ? '[…]' : '{…}';
  const keys = Object.keys(value);
  const parts = keys.slice(0, MAX_KEYS).map((key) => {
    const shown = show((value as Record<string, unknown>)[key], depth + 1);
    return array ? shown : key + ': ' + shown;
  });
  if (keys.length > MAX_KEYS) parts.push('…');
  return array ? '[' + parts.join(', ') + ']' : '{' + parts.join(', ') + '}';
}

/** The stack without its first line ("Error") and without this chunk's frames. */
function stackOf(error: unknown): string | undefined {
  const stack = error && (error as Error).stack;
  if (typeof stack !== 'string') return undefined;
  const frames = stack.split('\n').filter((line) => /^\s+at |@/.test(line) && line.indexOf(self) < 0);
  return clip(redact(frames.slice(0, MAX_STACK_FRAMES).join('\n')), MAX_STACK_CHARS);
}

function add(entry: ConsoleEntry): void {
  const h = host();
  if (busy || !h || !limit.take()) return;
  busy = true;
  try {
    entry.message = clip(redact(entry.message), MAX_MESSAGE_CHARS);
    if (limit.dropped) entry.dropped = limit.dropped;
    limit.dropped = 0;
    h.custom(TAG, entry);
  } finally {
    busy = false;
  }
}

function wrap(level: Level): void {
  const original = console[level];
  if (typeof original !== 'function') return;
  const record = guard((args: unknown[]) => {
    if (busy) return;
    busy = true;
    let message: string;
    let stack: string | undefined;
    try {
      const parts = args.slice(0, MAX_ARGS).map((arg) => clip(show(arg, 0), MAX_MESSAGE_CHARS));
      if (args.length > MAX_ARGS) parts.push(`… ${args.length - MAX_ARGS} more`);
      message = parts.join(' ');
      const thrown = args.find((arg) => arg instanceof Error);
      if (level === 'warn' || level === 'error') stack = stackOf(thrown || new Error());
    } finally {
      busy = false;
    }
    add({ level, message, ...(stack ? { stack } : {}) });
  });
  console[level] = function (this: Console, ...args: unknown[]) {
    const result = original.apply(this, args);
    record(args);
    return result;
  };
}

function uncaught(message: unknown, error: unknown): void {
  add({ level: 'error', message: String(message), stack: stackOf(error), uncaught: true });
}

function install(): void {
  const w = window as unknown as { __hmConsole?: boolean };
  if (w.__hmConsole || !host()) return; // loaded twice, or without the tracker
  w.__hmConsole = true;
  watchFields();
  LEVELS.forEach(wrap);
  addEventListener(
    'error',
    guard((e: ErrorEvent) => e.message !== undefined && uncaught(e.message, e.error)),
  );
  addEventListener(
    'unhandledrejection',
    guard((e: PromiseRejectionEvent) => {
      const reason = e.reason as { message?: unknown } | undefined;
      uncaught('Unhandled rejection: ' + (reason && reason.message !== undefined ? reason.message : show(reason, 1)), reason);
    }),
  );
}

guard(install)();
