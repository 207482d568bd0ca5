"""Decisions: parsing stream entries, matching requests against the table, and the poller's cursor and resyncs."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

import pytest

from hitmetrix.sdk.decisions import DecisionIndex, parse_decision
from hitmetrix.sdk.network import AddressResolver
from hitmetrix.sdk.poller import DecisionPoller
from hitmetrix.sdk.transport import Answer
from tests.sdk.memory import MemoryTransport
from tests.support import wait_for

NOW_MS = int(time.time() * 1000)
# Far enough ahead that a decision made at import is still active however long the suite runs before this test.
LATER_MS = NOW_MS + 365 * 86_400_000


def entry(decision_id: int, scope: str, value: str, action: str = "block", **extra: Any) -> dict[str, Any]:
    return {"id": decision_id, "scope": scope, "value": value, "action": action, "reason": "r",
            "expires_ms": LATER_MS, "revoked": False, "updated_ms": NOW_MS, **extra}  # fmt: skip


def index(*entries: dict[str, Any]) -> DecisionIndex:
    parsed = [parse_decision(e)[1] for e in entries]
    return DecisionIndex(d for d in parsed if d is not None)


def verdict(table: DecisionIndex, ip: str = "", session: str = "", user: str = "") -> str:
    address = ipaddress.ip_address(ip) if ip else None
    found = table.match(address, session, lambda: user, int(time.time() * 1000))
    return "allow" if found is None else found.action


def test_ip_decisions_match_by_the_plain_address_in_match() -> None:
    table = index(entry(1, "ip", "3f2a9c0d11e4b5a6", match="203.0.113.7"), entry(2, "ip", "2001:db8::1"))
    assert verdict(table, "203.0.113.7") == "block"
    assert verdict(table, "203.0.113.8") == "allow"
    assert verdict(table, "2001:db8:0:0::1") == "block"


def test_an_ip_decision_known_only_by_its_keyed_hash_is_kept_for_the_verdict_endpoint() -> None:
    decision_id, decision = parse_decision(entry(3, "ip", "3f2a9c0d11e4b5a6"))
    assert decision_id == "3" and decision is not None and decision.scope == "hashed_ip"
    table = index(entry(3, "ip", "3f2a9c0d11e4b5a6"))
    assert table.hashed and table.by_address
    assert verdict(table, "203.0.113.7") == "allow"  # cannot be matched here without the verdict endpoint
    found = table.match(ipaddress.ip_address("203.0.113.7"), "", lambda: "", NOW_MS, decision)
    assert found is decision


@pytest.mark.parametrize(
    ("net", "inside", "outside"),
    [
        ("203.0.113.0/24", "203.0.113.250", "203.0.114.1"),
        ("2001:db8:1:2::/64", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1"),
        ("198.51.96.0/20", "198.51.100.7", "198.51.112.1"),
        ("203.0.113.5/24", "203.0.113.99", "10.0.0.1"),  # host bits set: still the /24
    ],
)
def test_net_decisions_match_every_address_inside(net: str, inside: str, outside: str) -> None:
    table = index(entry(1, "net", net, "challenge"))
    assert verdict(table, inside) == "challenge"
    assert verdict(table, outside) == "allow"


def test_user_and_session_decisions() -> None:
    table = index(entry(1, "user", "u-17"), entry(2, "session", "sess_0123456789", "challenge"))
    assert verdict(table, user="u-17") == "block"
    assert verdict(table, user="u-18") == "allow"
    assert verdict(table, session="sess_0123456789") == "challenge"
    assert verdict(table, ip="198.51.100.1") == "allow"


def test_allow_beats_block_beats_challenge() -> None:
    table = index(entry(1, "net", "203.0.113.0/24", "challenge"), entry(2, "ip", "203.0.113.7", "block"))
    assert verdict(table, "203.0.113.7") == "block"
    table = index(entry(1, "net", "203.0.113.0/24", "block"), entry(2, "ip", "203.0.113.7", "allow"))
    assert verdict(table, "203.0.113.7") == "allow"
    assert verdict(table, "203.0.113.8") == "block"


def test_expired_revoked_and_unknown_entries_do_not_apply() -> None:
    table = index(
        entry(1, "ip", "203.0.113.1", expires_ms=NOW_MS - 1),
        entry(2, "ip", "203.0.113.2", revoked=True),
        entry(3, "ip", "203.0.113.3", "ban"),
        entry(4, "device", "a1b2c3d4e5f60718"),
        entry(5, "ip", "203.0.113.5", expires_ms=None),  # never expires
        entry(6, "ip", "203.0.113.6", expires_ms=None, expires_at="2999-01-01T00:00:00Z"),
    )
    assert [verdict(table, f"203.0.113.{n}") for n in range(1, 7)] == [
        "allow", "allow", "allow", "allow", "block", "block"
    ]  # fmt: skip


def test_user_of_is_called_only_when_user_decisions_exist() -> None:
    calls: list[int] = []

    def user_of() -> str:
        calls.append(1)
        return "u-1"

    index(entry(1, "ip", "203.0.113.7")).match(ipaddress.ip_address("203.0.113.7"), "", user_of, NOW_MS)
    assert calls == []
    index(entry(1, "user", "u-1")).match(None, "", user_of, NOW_MS)
    assert calls == [1]


def test_retry_after_counts_down_to_the_expiry() -> None:
    _, decision = parse_decision(entry(1, "ip", "203.0.113.7", "challenge", expires_ms=NOW_MS + 90_500))
    assert decision is not None and decision.retry_after_s(NOW_MS) == 91
    _, forever = parse_decision(entry(2, "ip", "203.0.113.7", "challenge", expires_ms=None))
    assert forever is not None and forever.retry_after_s(NOW_MS) == 60


class Stream:
    """A scripted decisions stream: answers each poll with the next document."""

    def __init__(self, *documents: Any) -> None:
        self.documents = list(documents)
        self.transport = MemoryTransport(self.answer)

    def answer(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        document = self.documents.pop(0) if len(self.documents) > 1 else self.documents[0]
        if isinstance(document, Answer):
            return document
        return Answer(200, {}, json.dumps(document).encode())

    def paths(self) -> list[str]:
        return [path for _method, path, _body, _headers in self.transport.requests]


def poller(stream: Any, errors: list[str], resync_s: float = 3600) -> DecisionPoller:
    made = DecisionPoller(
        transport_factory=stream.transport.factory,
        server_key="hm_sk_x",
        poll_s=3600,  # the test drives poll_once itself
        resync_s=resync_s,
        user_agent="t",
        on_error=lambda what, exc: errors.append(f"{what}: {exc!r}"),
        addresses=AddressResolver(()),
    )
    wait_for(lambda: made.polls + made.failed_polls >= 1, 5, what="the poller's first poll")
    made.close()  # stop its own thread after its first poll: polls below are the test's
    return made


def test_poller_cursor_changes_and_revocations() -> None:
    first = {"decisions": [entry(1, "ip", "x", match="203.0.113.7", updated_ms=1000), entry(2, "user", "u-1")]}
    later = {"decisions": [entry(1, "ip", "x", match="203.0.113.7", revoked=True, updated_ms=2000),
                           entry(3, "net", "198.51.100.0/24", updated_ms=2500)]}  # fmt: skip
    stream = Stream(first, later, {"decisions": []})
    errors: list[str] = []
    p = poller(stream, errors)
    assert p.size() == 2 and p.index is not None
    p.poll_once(stream.transport)
    assert p.size() == 2
    assert verdict(p.index, "203.0.113.7") == "allow"  # revoked
    assert verdict(p.index, "198.51.100.9") == "block"
    assert verdict(p.index, user="u-1") == "block"  # untouched by the change set
    p.poll_once(stream.transport)
    paths = stream.paths()
    assert paths[0] == "/api/v1/decisions/stream?since=0"
    assert paths[1] == f"/api/v1/decisions/stream?since={NOW_MS}"  # newest updated_ms of the first answer
    assert paths[2] == f"/api/v1/decisions/stream?since={NOW_MS}"  # 2500 < NOW_MS: the cursor never goes back
    assert errors == []
    assert stream.transport.requests[0][3]["Authorization"] == "Bearer hm_sk_x"


def test_poller_uses_the_servers_cursor_and_resyncs() -> None:
    stream = Stream({"decisions": [entry(1, "user", "u-1")], "next_since": 777}, {"decisions": [], "next_since": 778})
    p = poller(stream, [], resync_s=0)  # every poll is a full resync
    p.poll_once(stream.transport)
    assert stream.paths()[1] == "/api/v1/decisions/stream?since=0"
    assert p.size() == 0  # a full answer replaces the table


def test_a_failed_poll_keeps_the_table_and_is_counted() -> None:
    stream = Stream({"decisions": [entry(1, "user", "u-1")]}, Answer(503, {}, b"down"))
    errors: list[str] = []
    p = poller(stream, errors)
    with pytest.raises(RuntimeError, match="503"):
        p.poll_once(stream.transport)
    assert p.size() == 1


def test_the_poller_thread_counts_failures_without_raising() -> None:
    stream = Stream(Answer(401, {}, b'{"error":"unknown server key"}'))
    errors: list[str] = []
    p = poller(stream, errors)
    assert p.failed_polls == 1 and p.polls == 0
    assert errors and "401" in errors[0]


class Site:
    """A scripted Hitmetrix for the poller: a stream of decisions and a verdict per address."""

    def __init__(self, decisions: list[dict[str, Any]], verdicts: dict[str, dict[str, Any]]) -> None:
        self.decisions = decisions
        self.verdicts = verdicts
        self.transport = MemoryTransport(self.answer)

    def answer(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        if path.startswith("/api/v1/decisions/stream"):
            return Answer(200, {}, json.dumps({"decisions": self.decisions, "next_since": NOW_MS}).encode())
        assert path.startswith("/api/v1/decisions?ip=")
        allow = {"action": "allow", "reason": "", "expires_at": None, "decision_id": None}
        return Answer(200, {}, json.dumps(self.verdicts.get(path.split("=", 1)[1], allow)).encode())

    def asked(self) -> list[str]:
        return [path.split("=", 1)[1] for _m, path, _b, _h in self.transport.requests if "?ip=" in path]


def test_rule_decisions_known_by_hash_are_matched_through_the_verdict_endpoint() -> None:
    block = {"action": "block", "reason": "brute force", "expires_at": "2999-01-01T00:00:00Z", "decision_id": 7}
    site = Site([entry(7, "ip", "3f2a9c0d11e4b5a6")], {"203.0.113.7": block})
    p = poller(site, [])
    p.note("203.0.113.7", "")  # two clients seen by the request path
    p.note("198.51.100.1", "")
    assert p.verdict_for("203.0.113.7") is None  # not asked yet: passes
    p.look_up_addresses(site.transport)
    assert sorted(site.asked()) == ["198.51.100.1", "203.0.113.7"]
    found = p.verdict_for("203.0.113.7")
    assert found is not None and (found.action, found.reason, found.decision_id) == ("block", "brute force", "7")
    assert p.verdict_for("198.51.100.1") is None
    p.look_up_addresses(site.transport)
    assert len(site.asked()) == 2  # fresh answers are not asked again

    site.decisions = [entry(7, "ip", "3f2a9c0d11e4b5a6"), entry(8, "ip", "0a0b0c0d0e0f0a0b")]
    p.poll_once(site.transport)
    assert p.verdicts == {}  # the hashed decisions changed: every answer is stale
    p.look_up_addresses(site.transport)
    assert sorted(site.asked()[2:]) == ["198.51.100.1", "203.0.113.7"]  # the recent addresses asked again

    site.decisions = [entry(7, "ip", "3f2a9c0d11e4b5a6", active=False), entry(8, "ip", "0a", active=False)]
    p.poll_once(site.transport)
    p.look_up_addresses(site.transport)
    assert p.index is None and p.verdicts == {}
    assert len(site.asked()) == 4


def test_the_poller_follows_more_pages_in_one_poll() -> None:
    pages = [
        {"decisions": [entry(1, "user", "u-1")], "next_since": 10, "more": True},
        {"decisions": [entry(2, "user", "u-2")], "next_since": 20, "more": False},
    ]
    stream = Stream(*pages)
    p = poller(stream, [])
    assert p.size() == 2
    assert stream.paths() == ["/api/v1/decisions/stream?since=0", "/api/v1/decisions/stream?since=10"]
