"""Signed webhooks: every new alert of a project is POSTed to each of its enabled webhooks.

The body is JSON (``{"event": "alert", "delivery_id", "alert": {…}}``, the alert
as the API shows it). Two headers let the receiver trust it:
``X-Hitmetrix-Timestamp`` (seconds since the epoch) and
``X-Hitmetrix-Signature: sha256=<hex>``, the HMAC-SHA256 with the webhook's
secret of ``"<timestamp>." + body`` — the timestamp is signed so an old
delivery cannot be replayed as new (receivers refuse stale ones).
``X-Hitmetrix-Delivery`` names the delivery: a delivery cut off by a crash
after the receiver got it is sent again, and the receiver drops the repeat.

``WebhookSender`` is the detection engine's ``on_alert`` sink: it only writes
one ``WebhookDelivery`` row per webhook (bounded: past ``max_pending`` waiting
rows new ones are dropped and counted) and wakes its own thread, which posts
what is due. A failure (no answer within ``timeout_s``, or a status other than
2xx) is tried again after ``base_delay_s`` × 2^(attempts − 1), at most
``max_delay_s``, until ``max_attempts`` have failed (then the row is
``failed``). The rows are the queue, so a restart resumes where it stopped.
Redirects are not followed. Only http(s) URLs are accepted (``check_url``);
the dashboard refuses its own address when a webhook is added.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from hitmetrix.store.meta import MetaStore
from hitmetrix.store.security import MAX_REASON_CHARS, Alert, Webhook, WebhookDelivery, alert_json

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hitmetrix-Signature"
TIMESTAMP_HEADER = "X-Hitmetrix-Timestamp"
DELIVERY_HEADER = "X-Hitmetrix-Delivery"
MAX_URL_CHARS = 2000
MAX_WEBHOOKS_PER_PROJECT = 20
DUE_PER_ROUND = 50


@dataclass(frozen=True)
class PostResult:
    ok: bool
    status: int  # 0 when no HTTP answer came
    error: str  # "" when ok


Poster = Callable[[str, bytes, dict[str, str], float], PostResult]


def check_url(url: str) -> str:
    """The URL stripped, or ValueError saying why it cannot be a webhook (http(s) with a host only)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"url must be an http(s) URL of at most {MAX_URL_CHARS} characters, without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        raise ValueError("url must not carry a user name or password: use the signature to authenticate")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError("url has a bad port") from None
    return url


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "").lower().strip("[]"), parts.port or default


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def signed_headers(secret: str, body: bytes, timestamp_s: int, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Hitmetrix-Webhook/1",
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: sign(secret, timestamp_s, body),
        DELIVERY_HEADER: delivery,
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PostResult:
    """POST without following redirects; never raises."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as answer:
            answer.read(65536)
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(Exception):
            exc.close()
        return PostResult(False, exc.code, f"HTTP {exc.code}")
    except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, bad TLS: all are "try again later"
        return PostResult(False, 0, f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
    if 200 <= status < 300:
        return PostResult(True, status, "")
    return PostResult(False, status, f"HTTP {status}")


# --- webhooks of a project ----------------------------------------------------------------------------


def webhooks(meta: MetaStore, project_id: int) -> list[Webhook]:
    with meta.sessions() as db:
        return list(db.scalars(select(Webhook).where(Webhook.project_id == project_id).order_by(Webhook.id)))


def webhook(meta: MetaStore, project_id: int, webhook_id: int) -> Webhook | None:
    with meta.sessions() as db:
        found = db.get(Webhook, webhook_id)
    return found if found is not None and found.project_id == project_id else None


def add_webhook(meta: MetaStore, project_id: int, url: str, now_ms: int, secret: str | None = None) -> Webhook:
    """ValueError for a URL that cannot be one, or past MAX_WEBHOOKS_PER_PROJECT."""
    url = check_url(url)
    with meta.sessions.begin() as db:
        count = db.scalar(select(func.count(Webhook.id)).where(Webhook.project_id == project_id)) or 0
        if count >= MAX_WEBHOOKS_PER_PROJECT:
            raise ValueError(f"a project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks")
        hook = Webhook(project_id=project_id, url=url, secret=secret or new_secret(), enabled=True, created_ms=now_ms)
        db.add(hook)
        db.flush()
    return hook


def remove_webhook(meta: MetaStore, project_id: int, webhook_id: int) -> bool:
    with meta.sessions.begin() as db:
        found = db.get(Webhook, webhook_id)
        if found is None or found.project_id != project_id:
            return False
        db.delete(found)
    return True


def deliveries(meta: MetaStore, webhook_id: int, limit: int = 20) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    with meta.sessions() as db:
        return list(db.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def send_test(hook: Webhook, now_s: float, *, timeout_s: float = 5.0, post: Poster = http_post) -> PostResult:
    """One signed sample delivery, now, without retries (the settings page's test button)."""
    body = json.dumps(
        {"event": "test", "delivery_id": "test", "project_id": hook.project_id, "webhook_id": hook.id},
        separators=(",", ":"),
    ).encode()
    return post(hook.url, body, signed_headers(hook.secret, body, int(now_s), "test"), timeout_s)


# --- delivering alerts ----------------------------------------------------------------------------------


class WebhookSender:
    """The engine's sink for webhooks (see the module docstring); ``start`` its thread, ``stop`` it."""

    def __init__(
        self,
        meta: MetaStore,
        *,
        clock: Callable[[], float] = time.time,
        post: Poster = http_post,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        poll_interval_s: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        self.meta = meta
        self._clock = clock
        self._post = post
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.poll_interval_s = poll_interval_s
        self.max_pending = max_pending
        self.counters = {"queued": 0, "dropped": 0, "delivered": 0, "retried": 0, "failed": 0}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __call__(self, alert: Alert) -> None:
        """Queue a delivery of the new alert to each of its project's enabled webhooks (the engine's thread)."""
        with self.meta.sessions.begin() as db:
            hooks = list(
                db.scalars(select(Webhook.id).where(Webhook.project_id == alert.project_id, Webhook.enabled))
            )
            if not hooks:
                return
            pending = db.scalar(select(func.count(WebhookDelivery.id)).where(WebhookDelivery.status == "pending"))
            if (pending or 0) + len(hooks) > self.max_pending:
                self.counters["dropped"] += len(hooks)
                log.warning("webhook queue full (%d waiting): alert %d not delivered", pending, alert.id)
                return
            now = self._now_ms()
            for hook_id in hooks:
                db.add(WebhookDelivery(webhook_id=hook_id, alert_id=alert.id, status="pending", next_try_ms=now))
        self.counters["queued"] += len(hooks)
        self._wake.set()

    def start(self) -> WebhookSender:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hitmetrix-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while self.deliver_due() and not self._stop.is_set():
                    pass
            except Exception:  # the metadata store: keep the thread, try again later
                log.exception("webhook deliveries failed; trying again")
            self._wake.wait(self.poll_interval_s)

    def next_delay_s(self, attempts: int) -> float:
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1)))

    def deliver_due(self) -> int:
        """Post every delivery that is due now (at most DUE_PER_ROUND); how many were tried."""
        now = self._now_ms()
        query = (
            select(WebhookDelivery, Webhook, Alert)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(Alert, Alert.id == WebhookDelivery.alert_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_try_ms <= now)
            .order_by(WebhookDelivery.next_try_ms, WebhookDelivery.id)
            .limit(DUE_PER_ROUND)
        )
        with self.meta.sessions() as db:
            due = [(d.id, d.attempts, h.url, h.secret, h.enabled, alert_json(a)) for d, h, a in db.execute(query)]
        for delivery_id, attempts, url, secret, enabled, alert in due:
            if self._stop.is_set():
                break
            if not enabled:
                self._finish(delivery_id, "failed", attempts, "the webhook was disabled", now)
                continue
            body = json.dumps(
                {"event": "alert", "delivery_id": delivery_id, "alert": alert}, separators=(",", ":")
            ).encode()
            headers = signed_headers(secret, body, int(self._clock()), str(delivery_id))
            result = self._post(url, body, headers, self.timeout_s)
            attempts += 1
            if result.ok:
                self.counters["delivered"] += 1
                self._finish(delivery_id, "delivered", attempts, "", self._now_ms())
            elif attempts >= self.max_attempts:
                self.counters["failed"] += 1
                log.warning("webhook delivery %d failed for good after %d attempts: %s", delivery_id, attempts,
                            result.error)
                self._finish(delivery_id, "failed", attempts, result.error, self._now_ms())
            else:
                self.counters["retried"] += 1
                retry_at = self._now_ms() + int(self.next_delay_s(attempts) * 1000)
                self._finish(delivery_id, "pending", attempts, result.error, retry_at)
        return len(due)

    def _finish(self, delivery_id: int, status: str, attempts: int, error: str, next_try_ms: int) -> None:
        with self.meta.sessions.begin() as db:
            row = db.get(WebhookDelivery, delivery_id)
            if row is None:  # the webhook was removed meanwhile
                return
            row.status = status
            row.attempts = attempts
            row.last_error = error[:MAX_REASON_CHARS]
            row.next_try_ms = next_try_ms
