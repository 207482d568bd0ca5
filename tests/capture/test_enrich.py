"""hitmetrix/capture/enrich.py: each step alone, then the whole pipeline."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from hitmetrix.capture import enrich
from hitmetrix.capture.enrich import DROP_REASONS, STEP_TIMINGS, STEPS, EnrichEnv, run_pipeline, uuid7_strings
from hitmetrix.capture.network import parse_trusted_proxies
from hitmetrix.capture.schema import CaptureError, decode_batch_body
from hitmetrix.model import StoredBatch, decode_batch, encode_batch
from tests.capture.builders import NOW_MS, batch_dict, body_bytes, enrichment, incoming, project


def built(**kwargs: object) -> enrich.Enrichment:
    return enrich.build(enrichment(**kwargs))  # type: ignore[arg-type]


def test_step_names_are_the_documented_order() -> None:
    assert [name for name, _ in STEPS] == [
        "drop_empty",
        "build",
        "received_time",
        "storable_times",
        "scrub",
        "event_ids",
        "client_ip",
        "geo",
        "user_agent",
        "detection_keys",
        "anonymise_ip",
    ]
    assert DROP_REASONS == ("empty",)


def test_drop_empty() -> None:
    assert enrich.drop_empty(enrichment(incoming(events=0))).drop_reason == "empty"
    assert enrich.drop_empty(enrichment(incoming(events=0, chunks=1))).drop_reason is None
    assert enrich.drop_empty(enrichment(incoming(events=1))).drop_reason is None


def test_build_copies_the_batch() -> None:
    ctx = built(batch=incoming(events=2, chunks=1, user_id="alice"), proj=project(7))
    stored = ctx.stored
    assert (stored.project_id, stored.session_id, stored.anonymous_id, stored.user_id) == (
        7,
        "sess_0001",
        "anon_0001",
        "alice",
    )
    assert [(e.type, e.url, e.client_ts, e.props) for e in stored.events] == [
        ("pageview", "https://shop.example/p/0", NOW_MS - 100, '{"nav": "load"}'),
        ("pageview", "https://shop.example/p/1", NOW_MS - 99, '{"nav": "load"}'),
    ]
    assert stored.recording[0].data[:2] == b"\x1f\x8b"


def test_received_time_without_skew() -> None:
    ctx = enrich.received_time(built(now_s=(NOW_MS + 300) / 1000))  # 300 ms in transit
    assert ctx.received_at_ms == ctx.stored.received_at == NOW_MS + 300
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 100, NOW_MS - 99, NOW_MS - 98]


def test_received_time_corrects_a_slow_client_clock() -> None:
    ctx = enrich.received_time(built(now_s=(NOW_MS + 60_000) / 1000))  # client clock 1 min behind
    assert [e.ts for e in ctx.stored.events] == [NOW_MS + 59_900, NOW_MS + 59_901, NOW_MS + 59_902]
    assert [e.client_ts for e in ctx.stored.events] == [NOW_MS - 100, NOW_MS - 99, NOW_MS - 98]


def test_received_time_corrects_a_fast_client_clock_even_slightly() -> None:
    ctx = enrich.received_time(built(now_s=(NOW_MS - 500) / 1000))  # client clock 0.5 s ahead
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 600, NOW_MS - 599, NOW_MS - 598]


def test_received_time_without_sent_at_shifts_future_events_back_keeping_gaps() -> None:
    ctx = enrich.received_time(built(batch=incoming(sent_at=None), now_s=(NOW_MS - 1000) / 1000))
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 1002, NOW_MS - 1001, NOW_MS - 1000]
    ctx = enrich.received_time(built(batch=incoming(sent_at=None), now_s=(NOW_MS + 5000) / 1000))
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 100, NOW_MS - 99, NOW_MS - 98]


def test_event_ids_are_unique_uuid7() -> None:
    ctx = enrich.event_ids(enrich.received_time(built(batch=incoming(events=50))))
    ids = [e.event_id for e in ctx.stored.events] + [ctx.stored.batch_id]
    assert len(set(ids)) == 51
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert int(text[:8] + text[9:13], 16) == NOW_MS


def test_uuid7_strings_over_a_counter_block() -> None:
    ids = uuid7_strings(NOW_MS, 5000)
    assert len(set(ids)) == 5000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)
    assert ids[:4096] == sorted(ids[:4096])


def test_client_ip_step() -> None:
    env = EnrichEnv(clock=lambda: NOW_MS / 1000, trusted_proxies=parse_trusted_proxies("10.0.0.0/8"))
    ctx = enrich.client_ip(enrichment(peer="10.0.0.2", forwarded_for="9.9.9.9, 8.8.8.8", env=env))
    assert str(ctx.client_ip) == "8.8.8.8"
    ctx = enrich.client_ip(enrichment(peer="203.0.113.5", forwarded_for="8.8.8.8", env=env))
    assert str(ctx.client_ip) == "203.0.113.5"


def test_geo_step() -> None:
    ctx = enrich.geo(enrich.client_ip(built(peer="8.8.8.8")))
    assert (ctx.stored.country, ctx.stored.asn, ctx.stored.as_org) == ("US", 0, "GOOGLE")
    ctx = enrich.geo(enrich.client_ip(built(peer="192.168.1.20")))
    assert (ctx.stored.country, ctx.stored.asn, ctx.stored.as_org) == ("", 0, "")


def test_geo_step_can_be_switched_off() -> None:
    ctx = enrich.geo(enrich.client_ip(built(peer="8.8.8.8", env=EnrichEnv(clock=lambda: 0.0, geoip=False))))
    assert ctx.stored.country == ""


def test_user_agent_step() -> None:
    stored = enrich.user_agent(built()).stored
    assert (stored.browser, stored.browser_version, stored.os, stored.os_version, stored.device_type) == (
        "Chrome",
        "131",
        "Windows",
        "10",
        "desktop",
    )
    assert stored.user_agent.startswith("Mozilla/5.0 (Windows")


def test_anonymise_step_never_stores_the_real_address() -> None:
    for mode, expected in (("none", "8.8.8.8"), ("truncate", "8.8.8.0")):
        ctx = enrich.anonymise(enrich.client_ip(built(proj=project(mode=mode))))
        assert ctx.stored.ip == expected
    ctx = enrich.anonymise(enrich.client_ip(built(proj=project(mode="hash"))))
    assert len(ctx.stored.ip) == 32 and "8.8.8.8" not in repr(ctx.stored)


def test_detection_keys_step_keys_the_full_address_and_labels_crawler_claims() -> None:
    from hitmetrix.detect.keys import ip_key

    secret = b"k" * 32
    env = EnrichEnv(clock=lambda: NOW_MS / 1000, install_secret=secret)
    ctx = enrich.detection_keys(enrich.user_agent(enrich.client_ip(built(env=env, proj=project(mode="truncate")))))
    assert (ctx.stored.ip_key, ctx.stored.ip_net, ctx.stored.crawler) == (ip_key(secret, "8.8.8.8"), "8.8.8.0/24", "")
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ctx = enrich.detection_keys(enrich.user_agent(enrich.client_ip(built(env=env, user_agent=googlebot))))
    assert ctx.stored.crawler == "googlebot:unverified"  # the browser route never waits for DNS
    stored = run_pipeline(enrichment(incoming(), env=env, proj=project(mode="hash"))).stored
    assert stored.ip_key == ip_key(secret, "8.8.8.8") and "8.8.8.8" not in repr(stored)


def test_pipeline_end_to_end_and_timings() -> None:
    before = STEP_TIMINGS["geo"].count
    ctx = run_pipeline(enrichment(incoming(events=3, chunks=1), proj=project(mode="truncate")))
    assert ctx.drop_reason is None
    stored = decode_batch(encode_batch(ctx.stored))
    assert isinstance(stored, StoredBatch)
    assert (stored.country, stored.ip, stored.device_type, stored.received_at) == ("US", "8.8.8.0", "desktop", NOW_MS)
    assert len(stored.events) == 3 and len(stored.recording) == 1
    assert b"8.8.8.8" not in encode_batch(ctx.stored)
    assert STEP_TIMINGS["geo"].count == before + 1
    assert sum(STEP_TIMINGS["geo"].buckets) == STEP_TIMINGS["geo"].count


def test_pipeline_stops_at_a_drop() -> None:
    before = (STEP_TIMINGS["build"].count, enrich.DROPS["empty"])
    ctx = run_pipeline(enrichment(incoming(events=0)))
    assert ctx.drop_reason == "empty"
    assert (STEP_TIMINGS["build"].count, enrich.DROPS["empty"]) == (before[0], before[1] + 1)


def test_received_time_is_the_arrival_time_when_the_request_carries_it() -> None:
    # The body took 5 s to arrive: the clock now says NOW + 5 s, but the request arrived at NOW.
    ctx = enrich.received_time(built(now_s=(NOW_MS + 5000) / 1000, received_at_ms=NOW_MS))
    assert ctx.stored.received_at == NOW_MS
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 100, NOW_MS - 99, NOW_MS - 98]  # no shift


def refusal(ctx: enrich.Enrichment) -> CaptureError:
    with pytest.raises(CaptureError) as info:
        enrich.storable_times(enrich.received_time(enrich.build(ctx)))
    assert info.value.status == 400
    return info.value


YEAR_MS = 365 * 86_400_000


def test_storable_times_refuses_an_event_the_store_would_drop() -> None:
    batch = incoming(events=4, sent_at=None)
    batch.events[3].ts = 31_536_000_000  # 1971
    error = refusal(enrichment(batch))
    assert error.field == "$.events[3].ts"
    assert error.message.startswith("ts 31536000000, 31536000000 once corrected for clock skew, is outside the times")
    assert "(2015-12-01T15:00:00Z to 2096-02-08T06:28:16Z)" in error.message  # the range, as ms and as dates


def test_storable_times_refuses_implausible_sent_at() -> None:
    for sent_at in (2**53, 0, NOW_MS - 11 * YEAR_MS):
        error = refusal(enrichment(incoming(sent_at=sent_at)))
        assert error.field == "$.sent_at", sent_at


def test_storable_times_blames_the_event_that_pulled_the_batch_back() -> None:
    batch = incoming(events=3, sent_at=None)
    batch.events[1].ts = 2**53  # lies far ahead; the others are fine
    error = refusal(enrichment(batch))
    assert error.field == "$.events[1].ts"
    assert "after the request arrived" in error.message
    batch = incoming(events=3, sent_at=None)
    batch.events[1].ts = NOW_MS + 60_000  # a minute ahead: shifted back, fine
    batch.events[2].ts = 31_536_000_000  # out of range with or without the shift
    assert refusal(enrichment(batch)).field == "$.events[2].ts"


def test_storable_times_checks_chunks() -> None:
    cases = [("first_ts", 2**53, "first_ts"), ("last_ts", 2**53, "last_ts"), ("first_ts", NOW_MS, "last_ts")]
    for name, value, blamed in cases:
        batch = incoming(events=1, chunks=2)
        setattr(batch.recording[1], name, value)
        assert refusal(enrichment(batch)).field == f"$.recording[1].{blamed}"


def test_storable_times_keeps_a_clock_years_off_that_sent_at_corrects() -> None:
    batch = incoming(events=2, sent_at=NOW_MS - 5 * YEAR_MS)
    for event in batch.events:
        event.ts -= 5 * YEAR_MS
    ctx = enrich.storable_times(enrich.received_time(enrich.build(enrichment(batch))))
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 100, NOW_MS - 99]


def test_storable_times_shifts_slightly_future_events_back_and_keeps_them() -> None:
    batch = incoming(events=2, sent_at=None)
    batch.events[1].ts = NOW_MS + 60_000  # a client clock a minute fast, no sent_at
    ctx = enrich.storable_times(enrich.received_time(enrich.build(enrichment(batch))))
    assert [e.ts for e in ctx.stored.events] == [NOW_MS - 100 - 60_000, NOW_MS]


def test_scrub_step_masks_event_fields_but_not_identify_traits() -> None:
    proj = project(query_keys="q\nsort")
    body = batch_dict(events=4, user_id="alice@example.com")
    body["events"][0].update(
        url="https://shop.example/s?q=shoes&email=bob@example.com",
        referrer="https://mail.example/?token=abc",
        title="Orders of bob@example.com",
        text="Pay 4111 1111 1111 1111",
        selector="a[href='mailto:bob@example.com']",
        name="signup bob@example.com",
    )
    body["events"][1].update(type="error", props={"message": "no user bob@example.com", "stack": "at x"})
    body["events"][2].update(type="custom", name="plan", props={"nested": [{"mail": "bob@example.com"}]})
    body["events"][3].update(type="identify", props={"email": "bob@example.com"})
    ctx = enrich.scrub(enrich.build(enrichment(decode_batch_body(body_bytes(body)), proj=proj)))
    first, error, custom, identify = ctx.stored.events
    assert first.url == "https://shop.example/s?q=shoes&email=*"
    assert first.referrer == "https://mail.example/?token=*"
    assert (first.title, first.text, first.name) == ("Orders of [email]", "Pay [card]", "signup [email]")
    assert first.selector == "a[href='mailto:[email]']"
    assert json.loads(error.props) == {"message": "no user [email]", "stack": "at x"}
    assert json.loads(custom.props) == {"nested": [{"mail": "[email]"}]}
    assert json.loads(identify.props) == {"email": "bob@example.com"}  # identifying is what identify is for
    assert ctx.stored.user_id == "alice@example.com"


@dataclass
class ProjectWithoutAllowList:
    """A CaptureProject from before query_allowlist: capture must still work with it."""

    id: int = 1
    ip_anonymisation: str = "none"
    ip_hash_key: str = "k"

    def origins(self) -> list[str]:
        return []


def test_scrub_step_without_a_query_allowlist_attribute() -> None:
    body = batch_dict(events=1)
    body["events"][0]["url"] = "https://shop.example/s?q=shoes&utm_source=x"
    proj: Any = ProjectWithoutAllowList()
    ctx = enrich.scrub(enrich.build(enrichment(decode_batch_body(body_bytes(body)), proj=proj)))
    assert ctx.stored.events[0].url == "https://shop.example/s?q=*&utm_source=x"


def test_pipeline_refusal_is_a_capture_error_not_a_drop() -> None:
    batch = incoming(events=1, sent_at=2**53)
    with pytest.raises(CaptureError):
        run_pipeline(enrichment(batch))


def test_scrubbed_strings_are_remembered_per_allow_list_and_bounded() -> None:
    """The same URL, sent for projects with other allow-lists (or after a settings change), keeps what each allows."""
    url = "https://shop.example/s?q=shoes&sort=price"

    def scrubbed_url(proj: Any) -> str:
        body = batch_dict(events=1)
        body["events"][0]["url"] = url
        ctx = enrich.scrub(enrich.build(enrichment(decode_batch_body(body_bytes(body)), proj=proj)))
        return ctx.stored.events[0].url

    assert scrubbed_url(project(1, query_keys="q")) == "https://shop.example/s?q=shoes&sort=*"
    assert scrubbed_url(project(2, query_keys="sort")) == "https://shop.example/s?q=*&sort=price"
    assert scrubbed_url(project(1, query_keys="")) == "https://shop.example/s?q=*&sort=*"  # the keys were removed
    assert scrubbed_url(project(1, query_keys="q")) == "https://shop.example/s?q=shoes&sort=*"

    remembered = enrich._ScrubbedStrings()
    for i in range(enrich._ScrubbedStrings.MAX_ENTRIES + 10):
        enrich._once(remembered.texts, f"title {i} of bob@example.com", enrich.scrub_text)
    assert len(remembered.texts) <= enrich._ScrubbedStrings.MAX_ENTRIES
    assert enrich._once(remembered.texts, "mail bob@example.com", enrich.scrub_text) == "mail [email]"
