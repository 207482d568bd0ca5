/**
 * Visitor, session and user ids, and the per-session recording sequence.
 *
 * anonymous_id: localStorage `hm_aid` (memory only, per page load, when cookieless).
 * session_id:   sessionStorage `hm_sid` = "id.lastActivityMs.nextSeq", one per tab, so that a
 *               session's chunk seq numbers and its replay come from a single page lineage.
 * user_id:      localStorage `hm_uid` (sessionStorage when cookieless), set by identify().
 * Unless cookieless, the session id is also the first-party cookie `hm_sid` (path /, SameSite=Lax, 30 min
 * sliding), so the site's server middleware can join its requests to this session.
 */
import { load, now, randomId, save, StorageKind, validId } from './util';

export const IDLE_MS = 30 * 60 * 1000;
const AID = 'hm_aid';
const SID = 'hm_sid';
const UID = 'hm_uid';

export const ids = { aid: '', sid: '', uid: '' };
let lastActivity = 0;
let seq = 0;
let userStore: StorageKind = 'localStorage';
let cookies = false;
let cookieAt = 0;
let cookieSid = '';

/** The `hm_sid` cookie: written when the id changes, else at most once a minute (activity is frequent). */
function cookie(sid: string, maxAgeS: number): void {
  if (!cookies || (sid === cookieSid && lastActivity - cookieAt < 60000 && maxAgeS)) return;
  cookieSid = sid;
  cookieAt = lastActivity;
  const secure = location.protocol === 'https:' ? ';Secure' : '';
  try {
    document.cookie = SID + '=' + sid + ';Path=/;Max-Age=' + maxAgeS + ';SameSite=Lax' + secure;
  } catch (e) {
    /* a sandboxed document refuses cookies */
  }
}

function persist(): void {
  save('sessionStorage', SID, ids.sid + '.' + lastActivity + '.' + seq);
  cookie(ids.sid, IDLE_MS / 1000);
}

/** Restore or create the ids for this page. */
export function start(cookieless: boolean): void {
  cookies = !cookieless;
  userStore = cookieless ? 'sessionStorage' : 'localStorage';
  ids.aid = (!cookieless && load('localStorage', AID)) || '';
  if (!validId(ids.aid)) {
    ids.aid = randomId();
    if (!cookieless) save('localStorage', AID, ids.aid);
  }
  ids.uid = load(userStore, UID) || '';
  const [sid, last, next] = (load('sessionStorage', SID) || '').split('.');
  lastActivity = +last || 0;
  if (validId(sid) && !expired()) {
    ids.sid = sid;
    seq = +next || 0;
    touch();
  } else {
    rotate();
  }
}

/** True when the session has been idle for more than 30 minutes. */
export const expired = (t: number = now()): boolean => t - lastActivity > IDLE_MS;

/** Start a new session (new id, seq back to 0). */
export function rotate(): void {
  ids.sid = randomId();
  seq = 0;
  touch();
}

/** Record user activity now. */
export function touch(): void {
  lastActivity = now();
  persist();
}

/** Next chunk sequence number of the current session. */
export function nextSeq(): number {
  const s = seq++;
  persist();
  return s;
}

export function setUser(uid: string): void {
  ids.uid = uid;
  save(userStore, UID, uid || null);
}

/** Forget every stored id (opt-out). */
export function forget(): void {
  save('localStorage', AID, null);
  save('sessionStorage', SID, null);
  save(userStore, UID, null);
  cookie('', 0);
  ids.aid = ids.sid = ids.uid = '';
}
