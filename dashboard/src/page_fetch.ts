/**
 * Fetching a dashboard page to swap a part of it in place (the overview, the sessions panel of paths and
 * retention). Anything but the page itself or its 400 page (a bad parameter: the page shows its error) is an
 * error, so the caller falls back to a full page load and the browser shows what the server answered (signed out
 * meanwhile: a redirect to the sign-in page; a server error page).
 */
export async function fetchPage(url: string): Promise<Document> {
  const answer = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
  const type = answer.headers.get('content-type') || '';
  if (answer.redirected || !type.startsWith('text/html') || (answer.status !== 200 && answer.status !== 400)) {
    throw new Error(`unexpected answer ${answer.status}`);
  }
  return new DOMParser().parseFromString(await answer.text(), 'text/html');
}
