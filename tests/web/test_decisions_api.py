"""The decisions API the protected site reads with its server key: verdicts by address, network, user and session,
the stream of changes, and refusals (401 without the key, 400 for a bad parameter)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.detect.keys import install_secret, ip_key
from hitmetrix.runtime import Runtime
from hitmetrix.store import security
from hitmetrix.store.meta import Project
from hitmetrix.web.openapi import openapi_document
from tests.web.helpers import FakeClock, client

pytestmark = pytest.mark.anyio


def key_of(project: Project) -> dict[str, str]:
    return {"Authorization": f"Bearer {project.server_key}"}


def now_ms(clock: FakeClock) -> int:
    return int(clock() * 1000)


async def verdict(c: httpx.AsyncClient, project: Project, **params: str) -> dict[str, object]:
    answer = await c.get("/api/v1/decisions", params=params, headers=key_of(project))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, object] = answer.json()
    return body


async def test_a_client_without_a_decision_is_allowed(app: Starlette, runtime: Runtime) -> None:
    site = runtime.meta.create_project("site")
    async with client(app) as c:
        assert await verdict(c, site, ip="203.0.113.7") == {
            "action": "allow",
            "reason": "",
            "expires_at": None,
            "decision_id": None,
        }
        assert (await verdict(c, site))["action"] == "allow", "no parameter: nothing to decide on"


async def test_verdicts_match_the_address_its_network_the_user_and_the_session(
    app: Starlette, runtime: Runtime, clock: FakeClock
) -> None:
    meta, site = runtime.meta, runtime.meta.create_project("site")
    at = now_ms(clock)
    secret = install_secret(runtime.data_dir)
    by_rule = security.add_decision(
        meta, site.id, "ip", ip_key(secret, "203.0.113.7"), "block", "brute_force: 23 failed sign-ins", 600, "rule",
        at_ms=at,
    )
    net = security.add_decision(meta, site.id, "net", "198.51.100.0/24", "challenge", "scraping", 600, "rule",
                                match="198.51.100.0/24", at_ms=at)
    user = security.add_decision(meta, site.id, "user", "u-17", "block", "account takeover", None, "manual", at_ms=at)
    session = security.add_decision(meta, site.id, "session", "s-abc", "challenge", "hijack", 60, "rule", at_ms=at)
    async with client(app) as c:
        blocked = await verdict(c, site, ip="203.0.113.7")
        assert blocked == {
            "action": "block",
            "reason": "brute_force: 23 failed sign-ins",
            "expires_at": "2027-01-15T08:10:00Z",
            "decision_id": by_rule.id,
        }
        assert (await verdict(c, site, ip="::ffff:203.0.113.7"))["decision_id"] == by_rule.id, "one address, 2 forms"
        assert (await verdict(c, site, ip="198.51.100.99"))["decision_id"] == net.id
        assert (await verdict(c, site, ip="198.51.101.1"))["action"] == "allow"
        assert (await verdict(c, site, user="u-17"))["decision_id"] == user.id
        assert (await verdict(c, site, user="u-17"))["expires_at"] is None
        assert (await verdict(c, site, session="s-abc"))["decision_id"] == session.id
        # Several match: the strongest wins; a person's allow wins over everything.
        both = await verdict(c, site, ip="198.51.100.99", session="s-abc", user="u-17")
        assert both["decision_id"] == user.id
        allow = security.add_decision(meta, site.id, "ip", "198.51.100.99", "allow", "our office", None, "manual",
                                      match="198.51.100.99", at_ms=at)
        assert (await verdict(c, site, ip="198.51.100.99", user="u-17"))["decision_id"] == allow.id
        clock.advance(601)
        assert (await verdict(c, site, ip="203.0.113.7"))["action"] == "allow", "expired"
        security.revoke_decision(meta, site.id, user.id)
        assert (await verdict(c, site, user="u-17"))["action"] == "allow", "revoked"
        other = meta.create_project("other")
        assert (await verdict(c, other, ip="198.51.100.99"))["action"] == "allow", "another project's decisions"


async def test_the_stream_gives_changes_since_the_last_poll(app: Starlette, runtime: Runtime, clock: FakeClock) -> None:
    meta, site = runtime.meta, runtime.meta.create_project("site")
    at = now_ms(clock)
    first = security.add_decision(meta, site.id, "net", "192.0.2.0/24", "block", "probing", 600, "rule",
                                  match="192.0.2.0/24", at_ms=at - 5000)
    gone = security.add_decision(meta, site.id, "ip", "k-old", "block", "old", 1, "rule", at_ms=at - 5000)
    async with client(app) as c:
        answer = await c.get("/api/v1/decisions/stream", headers=key_of(site))
        body = answer.json()
        assert answer.status_code == 200 and body["now_ms"] == at and body["more"] is False
        assert [d["id"] for d in body["decisions"]] == [first.id], "since=0: the active ones only"
        item = body["decisions"][0]
        assert (item["scope"], item["value"], item["match"], item["action"], item["active"]) == (
            "net", "192.0.2.0/24", "192.0.2.0/24", "block", True
        )
        since = body["next_since"]
        clock.advance(1)
        newer = security.add_decision(meta, site.id, "user", "u-1", "challenge", "ato", 60, "rule",
                                      at_ms=now_ms(clock))
        answer = await c.get("/api/v1/decisions/stream", params={"since": since}, headers=key_of(site))
        assert [d["id"] for d in answer.json()["decisions"]] == [newer.id]
        assert gone.id not in [d["id"] for d in answer.json()["decisions"]]
        for bad in ("-1", "abc", "1e5", str(10**16), "99999999999999999999"):
            refused = await c.get("/api/v1/decisions/stream", params={"since": bad}, headers=key_of(site))
            assert refused.status_code == 400 and refused.json()["field"] == "since", bad


async def test_no_key_a_wrong_key_or_a_bad_parameter_is_refused(app: Starlette, runtime: Runtime) -> None:
    site = runtime.meta.create_project("site")
    async with client(app) as c:
        for path in ("/api/v1/decisions?ip=203.0.113.7", "/api/v1/decisions/stream"):
            for headers in (
                {},
                {"Authorization": "Bearer"},
                {"Authorization": f"Basic {site.server_key}"},
                {"Authorization": f"Bearer {site.server_key}x"},
                {"Authorization": f"Bearer {site.public_key}"},
                {"Authorization": "Bearer hm_sk_" + "a" * 500},
            ):
                answer = await c.get(path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.headers["www-authenticate"] == "Bearer" and answer.json()["error"]
        for params, field in (
            ({"ip": "203.0.113"}, "ip"),
            ({"ip": "not an address"}, "ip"),
            ({"ip": "1" * 100}, "ip"),
            ({"user": "u" * 201}, "user"),
            ({"session": "s\x00"}, "session"),
        ):
            answer = await c.get("/api/v1/decisions", params=params, headers=key_of(site))
            assert answer.status_code == 400 and answer.json()["field"] == field, params


def test_both_operations_are_in_the_openapi_document() -> None:
    document = openapi_document()
    for path in ("/api/v1/decisions", "/api/v1/decisions/stream"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"serverKey": []}] and {"200", "400", "401"} <= set(operation["responses"])
    assert document["components"]["securitySchemes"]["serverKey"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    "query",
    [
        "ip=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
        "ip=%FF%FE",
        "ip=1.2.3.4%00",
        "user=%00&session=%ED%A0%80",
        "user=" + "%7B%7D%5C%22" * 40,
        "ip=::ffff:999.1.1.1",
        "ip=1.2.3.4&ip=5.6.7.8",
        "session=" + "s" * 129,
        "ip=" + "9" * 30,
    ],
)
async def test_hostile_queries_get_an_answer_never_a_server_error(app: Starlette, runtime: Runtime, query: str) -> None:
    site = runtime.meta.create_project("site")
    async with client(app) as c:
        for path in ("/api/v1/decisions", "/api/v1/decisions/stream"):
            answer = await c.get(f"{path}?{query}", headers=key_of(site))
            assert answer.status_code in (200, 400), (path, query, answer.status_code)
            assert "error" in answer.json() or "action" in answer.json() or "decisions" in answer.json()
