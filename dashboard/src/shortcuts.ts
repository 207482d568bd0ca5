/**
 * Keyboard shortcuts of the replay page, and the `?` overlay that lists them.
 *
 * Keys act on the page only when focus is not in a text field (or a select): typing a filter or a
 * link must not pause the replay. Modified keys (Ctrl, Alt, Meta) are left to the browser.
 */

export interface ShortcutActions {
  togglePlay(): void;
  seekBy(deltaMs: number): void;
  /** Set a speed from SPEEDS by index, or step through them (+1 / -1). */
  setSpeedIndex(index: number): void;
  stepSpeed(step: number): void;
}

/** What each key does, in the order the overlay lists it. */
export const SHORTCUTS: { keys: string[]; what: string }[] = [
  { keys: ['Space', 'K'], what: 'Play / pause' },
  { keys: ['←', '→'], what: 'Back / forward 5 s' },
  { keys: ['J', 'L'], what: 'Back / forward 10 s' },
  { keys: ['<', '>'], what: 'Slower / faster' },
  { keys: ['1', '2', '3', '4'], what: 'Speed 1× / 2× / 4× / 8×' },
  { keys: ['?'], what: 'Show / hide this list' },
  { keys: ['Esc'], what: 'Close this list' },
];

const SMALL_SEEK_MS = 5000;
const BIG_SEEK_MS = 10000;

/** Whether a key typed with this element focused belongs to the element (text entry, a select). */
export function typingInto(el: Element | null): boolean {
  if (!el) return false;
  if ((el as HTMLElement).isContentEditable) return true;
  const tag = el.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag !== 'INPUT') return false;
  const type = ((el as HTMLInputElement).type || 'text').toLowerCase();
  return !/^(button|submit|reset|checkbox|radio|range|color|file|image)$/.test(type);
}

export class Shortcuts {
  readonly overlay: HTMLDivElement;

  constructor(
    private actions: ShortcutActions,
    opener: HTMLButtonElement | null,
  ) {
    this.overlay = buildOverlay();
    document.body.appendChild(this.overlay);
    this.overlay.addEventListener('click', (e) => {
      if (e.target === this.overlay || (e.target as Element).closest('.hm-keys-close')) this.showOverlay(false);
    });
    if (opener) opener.addEventListener('click', () => this.showOverlay(!!this.overlay.hidden));
    document.addEventListener('keydown', (e) => this.onKey(e));
  }

  showOverlay(show: boolean): void {
    this.overlay.hidden = !show;
  }

  /**
   * Keys pressed while focus is in the replay document: rrweb replays the visitor's focus into it, and
   * a click may put it there. Its document is rebuilt (and loses its listeners) at each full snapshot,
   * so call this again after each. Nothing typed there is the viewer's text: every key is a shortcut.
   */
  listenTo(win: Window | null): void {
    if (win) win.addEventListener('keydown', (e) => this.onKey(e, true));
  }

  private onKey(e: KeyboardEvent, inReplay = false): void {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!inReplay && typingInto(document.activeElement)) return;
    const handled = this.act(e.key);
    if (handled) {
      // Space would also press a focused button (and scroll the page): the shortcut is all it does.
      e.preventDefault();
      e.stopPropagation();
    }
  }

  private act(key: string): boolean {
    const a = this.actions;
    switch (key) {
      case ' ':
      case 'k':
      case 'K':
        a.togglePlay();
        return true;
      case 'ArrowLeft':
        a.seekBy(-SMALL_SEEK_MS);
        return true;
      case 'ArrowRight':
        a.seekBy(SMALL_SEEK_MS);
        return true;
      case 'j':
      case 'J':
        a.seekBy(-BIG_SEEK_MS);
        return true;
      case 'l':
      case 'L':
        a.seekBy(BIG_SEEK_MS);
        return true;
      case '<':
      case ',':
        a.stepSpeed(-1);
        return true;
      case '>':
      case '.':
        a.stepSpeed(1);
        return true;
      case '1':
      case '2':
      case '3':
      case '4':
        a.setSpeedIndex(Number(key) - 1);
        return true;
      case '?':
        this.showOverlay(!!this.overlay.hidden);
        return true;
      case 'Escape':
        if (this.overlay.hidden) return false;
        this.showOverlay(false);
        return true;
      default:
        return false;
    }
  }
}

function buildOverlay(): HTMLDivElement {
  const overlay = document.createElement('div');
  overlay.className = 'hm-keys';
  overlay.id = 'hm-keys';
  overlay.hidden = true;
  overlay.setAttribute('role', 'dialog');
  overlay.setAttribute('aria-label', 'Keyboard shortcuts');
  const box = document.createElement('div');
  box.className = 'hm-keys-box';
  const title = document.createElement('h2');
  title.textContent = 'Keyboard shortcuts';
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'hm-keys-close';
  close.setAttribute('aria-label', 'Close');
  close.textContent = '×';
  const list = document.createElement('dl');
  for (const { keys, what } of SHORTCUTS) {
    const row = document.createElement('div');
    const dt = document.createElement('dt');
    keys.forEach((k, i) => {
      if (i) dt.append(' ');
      const kbd = document.createElement('kbd');
      kbd.textContent = k;
      dt.appendChild(kbd);
    });
    const dd = document.createElement('dd');
    dd.textContent = what;
    row.append(dt, dd);
    list.appendChild(row);
  }
  box.append(close, title, list);
  overlay.appendChild(box);
  return overlay;
}
