/**
 * Getting data in: the install snippet's copy button, the "waiting for the
 * first event" check, and the browser's time zone for a new project.
 *
 * - `button[data-copy-from=ID]` copies the text of element ID.
 * - `[data-first-event-url]` asks that URL (the project's live feed, as JSON)
 *   every few seconds until the project has data, then turns green.
 * - `input[data-browser-zone]` gets this browser's IANA time zone, so that a
 *   project created from the form starts in its creator's zone.
 */
import { formatInZone } from './format';

const CHECK_MS = 2000;
const MAX_CHECK_MS = 30000;
const COPIED_MS = 2000;

/** What tests (and curious developers) can read from the page. */
export interface HmOnboarding {
  copied: string;
  checks: number;
  received: boolean;
}

declare global {
  interface Window {
    hmOnboarding?: HmOnboarding;
  }
}

const state: HmOnboarding = { copied: '', checks: 0, received: false };
window.hmOnboarding = state;

/** Select the element's text and copy it the old way: for pages not in a secure context (plain HTTP). */
function copyBySelection(el: HTMLElement): boolean {
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  if (!selection) return false;
  selection.removeAllRanges();
  selection.addRange(range);
  try {
    return document.execCommand('copy');
  } catch (e) {
    return false;
  }
}

function setupCopy(button: HTMLButtonElement): void {
  const label = button.textContent || 'Copy';
  button.addEventListener('click', () => {
    const source = document.getElementById(button.dataset.copyFrom || '');
    if (!source) return;
    const text = (source.textContent || '').trim();
    const done = (ok: boolean): void => {
      if (ok) state.copied = text;
      button.textContent = ok ? 'Copied' : 'Select and copy';
      button.classList.toggle('is-copied', ok);
      window.setTimeout(() => {
        button.textContent = label;
        button.classList.remove('is-copied');
      }, COPIED_MS);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        () => done(true),
        () => done(copyBySelection(source)),
      );
    } else {
      done(copyBySelection(source));
    }
  });
}

interface FeedSnapshot {
  has_data?: boolean;
  first_seen_at?: number | null;
}

function setupFirstEvent(box: HTMLElement): void {
  const url = box.dataset.firstEventUrl || '';
  const text = box.querySelector<HTMLElement>('.first-event-text');
  let delayMs = CHECK_MS;

  function received(snapshot: FeedSnapshot): void {
    state.received = true;
    box.dataset.state = 'received';
    if (!text) return;
    const at = typeof snapshot.first_seen_at === 'number' ? snapshot.first_seen_at : Date.now();
    text.textContent = `Data received (first at ${formatInZone(at, box.dataset.timeZone, true)}). `;
    const live = box.dataset.liveUrl;
    if (live) {
      const link = document.createElement('a');
      link.href = live;
      link.textContent = 'Watch it live';
      text.appendChild(link);
    }
  }

  async function check(): Promise<boolean> {
    const answer = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    state.checks++;
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const snapshot = (await answer.json()) as FeedSnapshot;
    if (snapshot.has_data) received(snapshot);
    return !!snapshot.has_data;
  }

  function schedule(wait: number): void {
    window.setTimeout(() => {
      if (document.visibilityState !== 'visible') return schedule(delayMs);
      check()
        .then((done) => {
          delayMs = CHECK_MS;
          if (!done) schedule(delayMs);
        })
        .catch(() => {
          delayMs = Math.min(MAX_CHECK_MS, delayMs * 2);
          schedule(delayMs);
        });
    }, wait);
  }
  schedule(0);
}

function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch (e) {
    return '';
  }
}

document.querySelectorAll<HTMLButtonElement>('button[data-copy-from]').forEach(setupCopy);
document.querySelectorAll<HTMLElement>('[data-first-event-url]').forEach(setupFirstEvent);
document.querySelectorAll<HTMLInputElement>('input[data-browser-zone]').forEach((input) => {
  if (!input.value) input.value = browserZone();
});
