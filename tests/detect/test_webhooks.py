"""Signed webhooks against a real HTTP receiver on 127.0.0.1: the signature verifies, a 500 then a 200 is
retried and delivered once, a restart resumes what was waiting, back-off and the give-up are bounded."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.process import alert_sinks
from hitmetrix.detect.webhooks import (
    WebhookSender,
    add_webhook,
    check_url,
    deliveries,
    remove_webhook,
    send_test,
    sign,
)
from hitmetrix.settings import load_settings
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore
from tests.support import wait_for


class Receiver:
    """A real HTTP server that answers each POST with the next status of its script (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path / "meta")
    yield store
    store.close()


def raise_alert(meta: MetaStore, project_id: int, value: str = "ab" * 8) -> security.Alert:
    finding = Finding(
        rule="brute_force", severity="high", entity_kind="ip", entity_value=value, entity_label="203.0.113.7",
        reasons=("23 failed sign-ins for a…@example.com in 5 min (threshold 10)",), ts_ms=1_800_000_000_000,
        project_id=project_id, numbers={"failures": 23}, sessions=(("s-attacker-0001", 1_800_000_000_000),),
    )
    alert, is_new = security.upsert_alert(meta, finding, 1_800_000_000_000, 900_000)
    assert is_new
    return alert


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    signed = headers["x-hitmetrix-timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-hitmetrix-signature"], expected)


def quick_sender(meta: MetaStore, **kwargs: Any) -> WebhookSender:
    return WebhookSender(meta, base_delay_s=0.05, max_delay_s=0.2, poll_interval_s=0.02, timeout_s=5.0, **kwargs)


def test_a_500_then_a_200_is_retried_and_delivered_once_signed(meta: MetaStore, receiver: Receiver) -> None:
    project = meta.create_project("site")
    hook = add_webhook(meta, project.id, receiver.url, 0)
    receiver.statuses = [500]
    sender = quick_sender(meta).start()
    try:
        alert = raise_alert(meta, project.id)
        sender(alert)
        wait_for(lambda: deliveries(meta, hook.id)[0].status == "delivered", 20, what="the delivery")
    finally:
        sender.stop()
    assert len(receiver.received) == 2, "one failure, one success, nothing after"
    for headers, body in receiver.received:
        assert verify(hook.secret, headers, body)
        assert not verify("whsec_wrong", headers, body), "control: another secret does not verify"
        sent = json.loads(body)
        assert sent["event"] == "alert" and sent["alert"]["id"] == alert.id
        assert sent["alert"]["reasons"] == ["23 failed sign-ins for a…@example.com in 5 min (threshold 10)"]
        assert headers["x-hitmetrix-delivery"] == str(sent["delivery_id"])
    [row] = deliveries(meta, hook.id)
    assert (row.attempts, row.status, row.last_error) == (2, "delivered", "")
    assert sender.counters["delivered"] == 1 and sender.counters["retried"] == 1


def test_a_restart_resumes_the_deliveries_that_were_waiting(meta: MetaStore, receiver: Receiver) -> None:
    project = meta.create_project("site")
    hook = add_webhook(meta, project.id, receiver.url, 0)
    receiver.statuses = [503]
    first = WebhookSender(meta, base_delay_s=0.3, poll_interval_s=0.02).start()
    first(raise_alert(meta, project.id))
    wait_for(lambda: deliveries(meta, hook.id)[0].attempts == 1, 20, what="the first attempt")
    first.stop()  # the detection process stops with a delivery waiting for its retry
    [waiting] = deliveries(meta, hook.id)
    assert waiting.status == "pending" and waiting.last_error == "HTTP 503"
    assert len(receiver.received) == 1
    second = quick_sender(meta).start()  # a new process: nothing in memory, only the rows
    try:
        wait_for(lambda: deliveries(meta, hook.id)[0].status == "delivered", 20, what="the resumed delivery")
    finally:
        second.stop()
    assert len(receiver.received) == 2
    assert [json.loads(body)["delivery_id"] for _, body in receiver.received] == [waiting.id, waiting.id]


def test_back_off_grows_and_a_receiver_that_keeps_failing_is_given_up_on(meta: MetaStore, receiver: Receiver) -> None:
    sender = WebhookSender(meta, base_delay_s=2.0, max_delay_s=60.0)
    assert [sender.next_delay_s(n) for n in (1, 2, 3, 4, 6, 10)] == [2.0, 4.0, 8.0, 16.0, 60.0, 60.0]
    project = meta.create_project("site")
    hook = add_webhook(meta, project.id, receiver.url, 0)
    receiver.statuses = [500] * 10
    failing = quick_sender(meta, max_attempts=3).start()
    try:
        failing(raise_alert(meta, project.id))
        wait_for(lambda: deliveries(meta, hook.id)[0].status == "failed", 20, what="the give-up")
    finally:
        failing.stop()
    assert len(receiver.received) == 3 and deliveries(meta, hook.id)[0].attempts == 3


def test_an_unreachable_receiver_is_an_error_not_a_crash(meta: MetaStore) -> None:
    project = meta.create_project("site")
    closed = Receiver()
    url = closed.url
    closed.close()  # nothing listens there now
    hook = add_webhook(meta, project.id, url, 0)
    sender = quick_sender(meta, max_attempts=2)
    sender(raise_alert(meta, project.id))
    assert sender.deliver_due() == 1
    [row] = deliveries(meta, hook.id)
    assert row.status == "pending" and row.attempts == 1 and "Error" in row.last_error
    assert send_test(hook, 1_800_000_000.0, timeout_s=2.0).ok is False


def test_the_queue_is_bounded_and_other_projects_hooks_hear_nothing(meta: MetaStore, receiver: Receiver) -> None:
    site, other = meta.create_project("site"), meta.create_project("other")
    hook = add_webhook(meta, site.id, receiver.url, 0)
    theirs = add_webhook(meta, other.id, receiver.url, 0)
    sender = quick_sender(meta, max_pending=1)  # not started: rows wait
    sender(raise_alert(meta, site.id, "aa" * 8))
    sender(raise_alert(meta, site.id, "bb" * 8))
    assert sender.counters == {"queued": 1, "dropped": 1, "delivered": 0, "retried": 0, "failed": 0}
    assert len(deliveries(meta, hook.id)) == 1 and deliveries(meta, theirs.id) == []
    assert remove_webhook(meta, other.id, hook.id) is False, "another project's webhook is not theirs to remove"
    assert remove_webhook(meta, site.id, hook.id) is True
    assert deliveries(meta, hook.id) == [], "its deliveries go with it"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "javascript:alert(1)", "file:///etc/passwd", "http://", "https://u:p@example.com/",
     "http://example.com:99999/", "http://exa mple.com/", "", "https://example.com/" + "x" * 2000],
)
def test_only_http_urls_may_be_webhooks(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_good_urls_and_the_signature_format() -> None:
    assert check_url(" https://chat.example.com/hooks/T0/B0?x=1 ") == "https://chat.example.com/hooks/T0/B0?x=1"
    assert check_url("http://[::1]:9000/h") == "http://[::1]:9000/h"
    expected = hmac.new(b"s3cret", b"1800000000.{}", hashlib.sha256).hexdigest()
    assert sign("s3cret", 1_800_000_000, b"{}") == f"sha256={expected}"


def test_the_detection_process_sends_new_alerts_to_the_webhooks(tmp_path: Path, receiver: Receiver) -> None:
    """``alert_sinks`` (what the detection process gives its engine) holds a started webhook sender."""
    settings = load_settings({"data_dir": tmp_path / "data", "geoip": False}, environ={})
    meta = MetaStore("", tmp_path / "data")
    try:
        project = meta.create_project("site")
        hook = add_webhook(meta, project.id, receiver.url, 0)
        sinks = alert_sinks(settings, meta)
        senders = [s for s in sinks if isinstance(s, WebhookSender)]
        assert len(senders) == 1
        try:
            senders[0](raise_alert(meta, project.id))  # as the engine calls each of its listeners
            wait_for(lambda: deliveries(meta, hook.id)[0].status == "delivered", 20, what="the delivery")
        finally:
            senders[0].stop()
        [(headers, body)] = receiver.received
        assert verify(hook.secret, headers, body)
    finally:
        meta.close()
