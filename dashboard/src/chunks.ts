/** Reading a session from the JSON API: its events and its recording, one chunk at a time. */
import type { RecordedEvent } from './sanitise';

/** One entry of the recording's chunk index (rendered into `data-chunks`). */
export interface ChunkInfo {
  seq: number;
  first_ts: number;
  last_ts: number;
  event_count: number;
  bytes: number;
}

/** An analytics event of the session, as `GET …/sessions/{sid}` returns it. */
export interface SessionEvent {
  event_id: string;
  type: string;
  name: string;
  ts: number;
  /** The event's time on the visitor's clock, the clock rrweb's recording uses. */
  client_ts?: number;
  url: string;
  title: string;
  selector: string;
  tag: string;
  text: string;
  props: string;
  user_id: string;
}

/** What `GET …/recording/chunks?since=SEQ` answers: the newer chunks and whether the session is still live. */
export interface RecordingProgress {
  chunks: ChunkInfo[];
  live: boolean;
  /** The server's clock when it answered. */
  now_ms: number;
  started_at: number | null;
  duration_ms: number | null;
}

export function parseChunks(raw: string | undefined | unknown[]): ChunkInfo[] {
  let parsed: unknown;
  try {
    parsed = Array.isArray(raw) ? raw : JSON.parse(raw || '[]');
  } catch (e) {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const chunks = parsed.filter(
    (c): c is ChunkInfo => !!c && typeof c === 'object' && typeof (c as ChunkInfo).seq === 'number',
  );
  return chunks.sort((a, b) => a.seq - b.seq);
}

/**
 * A stylesheet (or other large text) the server keeps once per project: the chunk holds this prefix and
 * the text's sha256 in its place (hitmetrix/store/blobs.py TEXT_REF_PREFIX).
 */
const TEXT_REF = /^hm:text:sha256:([0-9a-f]{64})$/;

export class SessionApi {
  /** Texts by sha256, fetched once per replay whatever the number of snapshots that use them. */
  private texts = new Map<string, Promise<string>>();

  constructor(private projectId: string, private sessionId: string) {}

  private get base(): string {
    return `/api/v1/projects/${encodeURIComponent(this.projectId)}/sessions/${encodeURIComponent(this.sessionId)}`;
  }

  async events(): Promise<SessionEvent[]> {
    const body = (await getJson(this.base)) as { events?: SessionEvent[] };
    return Array.isArray(body.events) ? body.events : [];
  }

  /**
   * The chunk with its text references replaced by the texts, before anything else reads it. Texts come
   * from the dashboard's own origin, from the session's project only; one that cannot be had (a forged
   * reference) becomes an empty string rather than failing the replay.
   */
  private async withTexts(events: unknown[]): Promise<unknown[]> {
    const wanted = new Set<string>();
    mapStrings(events, (s) => {
      const m = s.length == 79 ? TEXT_REF.exec(s) : null;
      if (m) wanted.add(m[1]);
      return s;
    });
    if (!wanted.size) return events;
    const found = new Map<string, string>();
    await Promise.all(
      Array.from(wanted, async (sha) => {
        let text = this.texts.get(sha);
        if (!text) {
          text = this.fetchText(sha);
          this.texts.set(sha, text);
        }
        found.set(sha, await text);
      }),
    );
    mapStrings(events, (s) => {
      const m = s.length == 79 ? TEXT_REF.exec(s) : null;
      return m ? found.get(m[1]) ?? '' : s;
    });
    return events;
  }

  private async fetchText(sha: string): Promise<string> {
    const path = `/projects/${encodeURIComponent(this.projectId)}/texts/${sha}`;
    const response = await fetch(path, { credentials: 'same-origin' });
    if (response.status == 404) return '';
    if (!response.ok) {
      this.texts.delete(sha); // a passing failure: the chunk's retry asks again
      throw new Error(`${path}: HTTP ${response.status}`);
    }
    return response.text();
  }

  /** The chunks after `since` (all with -1), for following a session in progress. */
  async progress(since: number): Promise<RecordingProgress> {
    const query = since >= 0 ? `?since=${since}` : '';
    const body = (await getJson(`${this.base}/recording/chunks${query}`)) as Partial<RecordingProgress>;
    return {
      chunks: parseChunks(Array.isArray(body.chunks) ? body.chunks : []),
      live: body.live === true,
      now_ms: typeof body.now_ms === 'number' ? body.now_ms : Date.now(),
      started_at: typeof body.started_at === 'number' ? body.started_at : null,
      duration_ms: typeof body.duration_ms === 'number' ? body.duration_ms : null,
    };
  }

  /** One chunk's rrweb events; retried a few times, since a replay without a chunk is worse than a slow one. */
  async chunk(seq: number, attempts = 3): Promise<RecordedEvent[]> {
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        // Large texts as references (hitmetrix/web/api.py get_chunk): each is fetched once, not once a snapshot.
        const body = await getJson(`${this.base}/recording/${seq}`, { 'X-Hitmetrix-Texts': 'refs' });
        if (!Array.isArray(body)) throw new Error(`chunk ${seq} is not a JSON array`);
        return showCanvasPixels(await this.withTexts(body)) as RecordedEvent[];
      } catch (e) {
        lastError = e;
        await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
      }
    }
    throw lastError;
  }
}

const CANVAS_PIXELS = /^data:image\/(?:png|jpeg|webp);base64,[A-Za-z0-9+/=]+$/;

/**
 * A recorded canvas's pixels (rrweb's `rr_dataURL`) as the element's background image. The replay
 * document runs no script (its iframe's sandbox has no allow-scripts, on purpose), and there a
 * <canvas> is not a drawing surface but a plain box showing its fallback content: rrweb's drawing
 * into it shows nothing. So the box is given the recorded size (width/height attributes, content box)
 * and the image; the page's own inline style comes after ours and wins where it says otherwise.
 */
function showCanvasPixels(events: unknown[]): unknown[] {
  const stack: unknown[] = [events];
  while (stack.length) {
    const item = stack.pop();
    if (!item || typeof item !== 'object') continue;
    const node = item as { tagName?: unknown; attributes?: Record<string, unknown> };
    const attrs = node.attributes;
    const url = attrs && attrs.rr_dataURL;
    if (node.tagName === 'canvas' && attrs && typeof url === 'string' && CANVAS_PIXELS.test(url)) {
      const size = (name: string, fallback: number): number => {
        const n = Number(attrs[name]);
        return Number.isFinite(n) && n >= 0 ? n : fallback;
      };
      const own = typeof attrs.style === 'string' ? attrs.style : '';
      attrs.style =
        `box-sizing: content-box; width: ${size('width', 300)}px; height: ${size('height', 150)}px; ${own};` +
        ` background-image: url("${url}"); background-size: 100% 100%; background-repeat: no-repeat;` +
        ' background-origin: content-box;';
    }
    for (const v of Object.values(item as Record<string, unknown>)) if (v && typeof v === 'object') stack.push(v);
  }
  return events;
}

/** Every string of `value` (decoded JSON) passed through `change`; iterative, as recordings nest deep. */
function mapStrings(value: unknown, change: (s: string) => string): void {
  const stack: unknown[] = [value];
  while (stack.length) {
    const item = stack.pop();
    if (!item || typeof item !== 'object') continue;
    const record = item as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const v = record[key];
      if (typeof v === 'string') record[key] = change(v);
      else if (v && typeof v === 'object') stack.push(v);
    }
  }
}

async function getJson(path: string, headers: Record<string, string> = {}): Promise<unknown> {
  const response = await fetch(path, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}
