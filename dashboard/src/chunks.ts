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

export function parseChunks(raw: string | undefined): ChunkInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw || '[]');
  } catch (e) {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const chunks = parsed.filter(
    (c): c is ChunkInfo => !!c && typeof c === 'object' && typeof (c as ChunkInfo).seq === 'number',
  );
  return chunks.sort((a, b) => a.seq - b.seq);
}

export class SessionApi {
  constructor(private projectId: string, private sessionId: string) {}

  private get base(): string {
    return `/api/v1/projects/${encodeURIComponent(this.projectId)}/sessions/${encodeURIComponent(this.sessionId)}`;
  }

  async events(): Promise<SessionEvent[]> {
    const body = (await getJson(this.base)) as { events?: SessionEvent[] };
    return Array.isArray(body.events) ? body.events : [];
  }

  /** One chunk's rrweb events; retried a few times, since a replay without a chunk is worse than a slow one. */
  async chunk(seq: number, attempts = 3): Promise<RecordedEvent[]> {
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        const body = await getJson(`${this.base}/recording/${seq}`);
        if (!Array.isArray(body)) throw new Error(`chunk ${seq} is not a JSON array`);
        return body as RecordedEvent[];
      } catch (e) {
        lastError = e;
        await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
      }
    }
    throw lastError;
  }
}

async function getJson(path: string): Promise<unknown> {
  const response = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}
