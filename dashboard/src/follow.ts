/**
 * Live replay: following a session that is still being recorded.
 *
 * Chunks reach the dashboard some seconds after the visitor acted (the tracker sends every few
 * seconds, then capture, spool, loader and the chunk worker each take their turn). The follower
 * asks the server for chunks newer than the last one every POLL_MS and adds their events to the
 * player, which plays `delayMs` behind the visitor's clock: events that arrive within that delay
 * play at their own pace, not in a burst. When a chunk still arrives too late for that, the delay
 * grows to fit it (up to MAX_DELAY_MS) and the player jumps back to the new live point.
 *
 * rrweb's player ends at its last event, and its own live mode cannot be paused or sought. So the
 * replay stays an ordinary one, and the follower keeps adding an empty custom event (`hm-pad`) at the
 * visitor's "now": the progress bar ends at now, playback never runs out while following, and the
 * viewer can pause, seek back and jump to live again.
 *
 * The visitor's clock is estimated from ours: the server says its time in every answer, and the
 * session's events say how far the visitor's clock is from the server's (`skewMs`).
 */
import type Player from 'rrweb-player';
import type { ChunkInfo, RecordingProgress, SessionApi } from './chunks';

const POLL_MS = 1500;
const TICK_MS = 1000;
/** The tracker sends every 5 s; the pipeline after it takes a second or two. */
export const LIVE_DELAY_MS = 8000;
const MAX_DELAY_MS = 30000;
const LATE_MARGIN_MS = 1500;
/** Within this of the live point, playing at 1×, the player counts as following. */
const AT_LIVE_TOLERANCE_MS = 3000;
export const PAD_TAG = 'hm-pad';
const CUSTOM_EVENT = 5;

export interface LiveHost {
  player(): Player | null;
  /** The recording-clock time of the player's offset 0. */
  startTime(): number;
  /** Server clock minus the visitor's clock. */
  skewMs(): number;
  lastSeq(): number;
  /** Fetch a new chunk and add its events to the player. */
  addChunk(chunk: ChunkInfo): Promise<void>;
  /** The session is no longer live: its last activity was a while ago. */
  ended(progress: RecordingProgress): void;
  /** New chunks arrived: the session's analytics events may have too. */
  newData(): void;
}

export function padEvent(timestamp: number): { type: number; timestamp: number; data: object } {
  return { type: CUSTOM_EVENT, timestamp, data: { tag: PAD_TAG, payload: {} } };
}

export class LiveFollower {
  delayMs = LIVE_DELAY_MS;
  stopped = false;
  /** Dashboard clock → server clock. */
  private serverOffsetMs: number;
  private lastPadTs = 0;
  private tickTimer = 0;
  private pollTimer = 0;

  constructor(
    private api: SessionApi,
    private host: LiveHost,
    private badge: HTMLElement,
    private jumpButton: HTMLButtonElement,
    serverNowMs: number,
  ) {
    this.serverOffsetMs = isFinite(serverNowMs) && serverNowMs > 0 ? serverNowMs - Date.now() : 0;
    jumpButton.addEventListener('click', () => this.jump());
  }

  /** Start following; `jumpNow` false keeps the player where it is (a link to a moment was opened). */
  start(jumpNow: boolean): void {
    this.badge.hidden = false;
    this.badge.textContent = 'Live';
    this.badge.classList.remove('hm-ended');
    this.pad();
    if (jumpNow) this.jump();
    this.tickTimer = window.setInterval(() => this.tick(), TICK_MS);
    this.tick();
    this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
  }

  stop(): void {
    this.stopped = true;
    window.clearInterval(this.tickTimer);
    window.clearTimeout(this.pollTimer);
    this.jumpButton.hidden = true;
    this.badge.textContent = 'Session ended';
    this.badge.classList.add('hm-ended');
  }

  /** The visitor's clock now (estimated). */
  visitorNow(): number {
    return Date.now() + this.serverOffsetMs - this.host.skewMs();
  }

  /** The player offset that is `delayMs` behind the visitor. */
  liveOffset(): number {
    return Math.max(0, this.visitorNow() - this.delayMs - this.host.startTime());
  }

  atLive(): boolean {
    const player = this.host.player();
    if (!player || this.stopped) return false;
    const replayer = player.getReplayer();
    const playing = replayer.service.state.value === 'playing';
    return playing && replayer.config.speed === 1 && Math.abs(replayer.getCurrentTime() - this.liveOffset()) < AT_LIVE_TOLERANCE_MS;
  }

  jump(): void {
    const player = this.host.player();
    if (!player || this.stopped) return;
    if (player.getReplayer().config.speed !== 1) player.setSpeed(1);
    player.goto(this.liveOffset(), true);
    this.tick();
  }

  private pad(): void {
    const player = this.host.player();
    const now = this.visitorNow();
    if (!player || now <= this.lastPadTs) return;
    this.lastPadTs = now;
    player.addEvent(padEvent(now) as Parameters<Player['addEvent']>[0]);
  }

  private tick(): void {
    if (this.stopped) return;
    this.pad();
    const atLive = this.atLive();
    this.jumpButton.hidden = atLive;
    this.badge.classList.toggle('hm-behind', !atLive);
    this.badge.textContent = `Live · ${Math.round(this.delayMs / 1000)} s behind`;
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      const asked = Date.now();
      const progress = await this.api.progress(this.host.lastSeq());
      this.serverOffsetMs = progress.now_ms - (asked + Date.now()) / 2;
      for (const chunk of progress.chunks) {
        if (chunk.seq <= this.host.lastSeq()) continue;
        const wasAtLive = this.atLive();
        await this.host.addChunk(chunk);
        // Some of its events were due before now on the player's clock: they would play in a burst.
        const lateMs = this.host.startTime() + this.liveOffset() - chunk.first_ts;
        if (wasAtLive && lateMs > 0 && this.delayMs < MAX_DELAY_MS) {
          this.delayMs = Math.min(MAX_DELAY_MS, this.delayMs + lateMs + LATE_MARGIN_MS);
          this.jump();
        }
      }
      if (progress.chunks.length) this.host.newData();
      if (!progress.live) {
        this.stop();
        this.host.ended(progress);
        return;
      }
    } catch (e) {
      console.warn('live replay: could not ask for new chunks; trying again', e);
    }
    this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
  }
}
