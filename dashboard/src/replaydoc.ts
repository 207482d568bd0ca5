/**
 * What a page that replays a recording needs of its own document and of the replay's (the replay page and the
 * heatmap page share it): a `no-referrer` policy pinned into the replay document, and post forms that still work
 * under the page's own `no-referrer` policy.
 */

/**
 * Gives the replay document a `no-referrer` policy of its own. It inherits the page's already;
 * this holds even if rrweb's rebuild (document.open) or a future rrweb changed that. A later
 * recorded `<meta name=referrer>` would win, which is why the sanitiser makes those inert.
 */
export function pinNoReferrer(doc: Document | null): void {
  const parent = doc && (doc.head || doc.documentElement);
  if (!doc || !parent) return;
  const meta = doc.createElement('meta');
  meta.name = 'referrer';
  meta.content = 'no-referrer';
  parent.insertBefore(meta, parent.firstChild);
}

/**
 * The replay page is served with `Referrer-Policy: no-referrer`, and under that policy browsers
 * send `Origin: null` with form posts, which the dashboard's CSRF check refuses. So the page's own
 * post forms (sign out) are sent with fetch and a same-origin referrer policy, which sends the
 * real Origin, and the browser then goes where the answer went.
 */
export function postFormsWithOrigin(doc: Document): void {
  doc.addEventListener('submit', (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== 'post') return;
    e.preventDefault();
    const body = new URLSearchParams();
    new FormData(form).forEach((value, name) => body.append(name, String(value)));
    fetch(form.action, { method: 'POST', body, credentials: 'same-origin', referrerPolicy: 'same-origin' })
      .then((answer) => location.assign(answer.redirected ? answer.url : location.href))
      .catch(() => location.reload());
  });
}
