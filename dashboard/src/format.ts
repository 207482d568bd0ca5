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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The zone's name when this browser knows it, else UTC (a display must never throw). */
export function knownZone(timeZone: string | undefined): string {
  if (!timeZone) return 'UTC';
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone });
    return timeZone;
  } catch (e) {
    return 'UTC';
  }
}

/**
 * `2 Dec 2026 00:30 (Pacific/Kiritimati)`: a moment in the project's time zone, followed by the zone's
 * name — exactly as the server writes times (hitmetrix/timezones.py), so the two never disagree.
 */
export function formatInZone(ms: number, timeZone: string | undefined, seconds = false): string {
  const zone = knownZone(timeZone);
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  }).formatToParts(new Date(ms));
  const part: Record<string, string> = {};
  for (const p of parts) part[p.type] = p.value;
  const hour = part.hour === '24' ? '00' : part.hour; // some engines write midnight as 24 with hour12: false
  const clock = `${hour}:${part.minute}` + (seconds ? `:${part.second}` : '');
  return `${Number(part.day)} ${MONTHS[Number(part.month) - 1]} ${part.year} ${clock} (${zone})`;
}
