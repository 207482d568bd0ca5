/** Small display helpers shared by the dashboard pages. */

/** `m:ss` (or `h:mm:ss`) for a duration in milliseconds. */
export function formatClock(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = s < 10 ? '0' + s : String(s);
  if (h) return `${h}:${m < 10 ? '0' + m : m}:${ss}`;
  return `${m}:${ss}`;
}

/** The path, query and hash of a URL (what matters once you know the site), or the text as given. */
export function shortUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname + u.search + u.hash;
  } catch (e) {
    return url;
  }
}

/** Show server-rendered UTC times (`<time data-ms>`) in the viewer's local time zone; UTC stays in the title. */
export function localiseTimes(root: ParentNode): void {
  const times = root.querySelectorAll<HTMLTimeElement>('time[data-ms]');
  for (let i = 0; i < times.length; i++) {
    const el = times[i];
    const ms = Number(el.dataset.ms);
    if (!isFinite(ms)) continue;
    const date = new Date(ms);
    el.title = date.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
    el.textContent = date.toLocaleString(undefined, {
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }
}
