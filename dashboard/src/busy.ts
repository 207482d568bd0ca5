/**
 * A view of an analytics page that is not swapped in place (a form of the page, a range, filter or comparison link
 * of the shared bar) is a new page load: the page says it is busy while the next view's query runs, and stops
 * saying so when the browser shows it again from its back-forward cache.
 */
export function markBusyWhileLeaving(root: HTMLElement): void {
  const busy = (on: boolean): void => {
    root.classList.toggle('is-loading', on);
    if (on) root.setAttribute('aria-busy', 'true');
    else root.removeAttribute('aria-busy');
  };
  for (const form of Array.from(root.querySelectorAll<HTMLFormElement>('form'))) {
    form.addEventListener('submit', () => busy(true));
  }
  root.addEventListener('click', (event) => {
    const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
    if (event.defaultPrevented || event.button !== 0 || modified) return;
    const link = (event.target as Element).closest<HTMLAnchorElement>('a[data-nav]');
    if (link && link.origin === window.location.origin) busy(true);
  });
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) busy(false);
  });
}
