/**
 * The sessions panel of an analytics page (paths, retention): a click on one of the page's session links fetches
 * that view's page and swaps only its sessions panel in, pushing the URL so an opened list is a shareable view too.
 * Anything unexpected (signed out meanwhile, a server error page, no panel in the answer) falls back to a full page
 * load of the same URL, so the page works as it would without the script.
 */

import { fetchPage } from './page_fetch';

/** What tests (and curious developers) can read from a page: panels swapped in, and swaps that fell back. */
export interface PanelCounts {
  opened: number;
  failures: number;
}

export interface SessionsPanelOptions {
  /** The panel's id, in this page and in the fetched one. */
  panelId: string;
  /** Counted on every swap and every fallback. */
  counts: PanelCounts;
  /** The history entry's state when a swap pushes its URL (it names the page that pushed it). */
  historyState: Record<string, boolean>;
  /** Runs after a swap, before the panel scrolls into view: e.g. marks what the panel now lists. */
  afterSwap?: (url: string) => void;
}

/** Opens the view at `url` in the panel; `push` adds the URL to the history (not when going back or forward). */
export type OpenInPanel = (url: string, push: boolean) => Promise<void>;

/** The panel's opener: fetches the view at a URL and swaps its sessions panel in; the latest call wins. */
export function sessionsPanel(options: SessionsPanelOptions): OpenInPanel {
  const { panelId, counts } = options;
  let latest = 0;
  return async (url, push) => {
    const current = document.getElementById(panelId);
    if (!current) {
      window.location.assign(url);
      return;
    }
    const ticket = ++latest;
    current.classList.add('is-loading');
    current.setAttribute('aria-busy', 'true');
    try {
      const parsed = await fetchPage(url);
      if (ticket !== latest) return; // a newer click won
      // A 400 page (a bad parameter in the URL) has its error box where the panel would be.
      const next = parsed.getElementById(panelId) || parsed.querySelector('.hm-ov-error');
      if (!next) throw new Error('no sessions panel in the answer');
      const adopted = document.importNode(next, true) as HTMLElement;
      adopted.id = panelId;
      current.replaceWith(adopted);
      if (push) history.pushState(options.historyState, '', url);
      if (options.afterSwap) options.afterSwap(url);
      counts.opened += 1;
      adopted.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      counts.failures += 1;
      if (ticket === latest) window.location.assign(url);
    }
  };
}

/**
 * Opens in the panel the links inside `root` that match `selector` (and lead to this origin) on a plain click; a
 * click with a modifier key or another button keeps its browser meaning (a new tab, a new window).
 */
export function openLinksInPanel(root: HTMLElement, selector: string, open: OpenInPanel): void {
  root.addEventListener('click', (event) => {
    const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
    if (event.defaultPrevented || event.button !== 0 || modified) return;
    const link = (event.target as Element).closest<HTMLAnchorElement>(selector);
    if (!link || link.origin !== window.location.origin) return;
    event.preventDefault();
    void open(link.href, true);
  });
}
