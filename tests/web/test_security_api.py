"""The security JSON API on the real app and real chDB: who may read and change what, project isolation,
filters and paging, evidence with replay moments and request timelines, decisions, allow-list, entities,
webhooks (a real receiver on 127.0.0.1), bad input → 400 naming the field."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.keys import install_secret, ip_key
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.runtime import Runtime
from hitmetrix.spool import Spool
from hitmetrix.store import accounts, audit, security
from hitmetrix.web.openapi import openapi_document
from tests.web.helpers import FakeClock, client, make_user

pytestmark = pytest.mark.anyio

HOSTILE_UA = '<script>alert("ua")</script> sqlmap/1.7'
HOSTILE_PATH = "/login?next=<img src=x onerror=alert(1)>"


@dataclass
class World:
    app: Starlette
    runtime: Runtime
    site: int
    other: int
    tokens: dict[str, str]  # role → bearer token
    alerts: dict[str, int]  # name → alert id
    now_ms: int
    address: str  # the attacker's


def finding(project_id: int, rule: str, severity: str, kind: str, value: str, label: str, ts_ms: int,
            sessions: tuple[tuple[str, int], ...] = (), reason: str = "") -> Finding:
    return Finding(
        rule=rule, severity=severity, entity_kind=kind, entity_value=value, entity_label=label,
        reasons=(reason or f"23 failed sign-ins for {label} in 5 min (threshold 10)",), ts_ms=ts_ms,
        project_id=project_id, numbers={"failures": 23, "threshold": 10}, sessions=sessions,
    )


def request_batch(project_id: int, sid: str, start_ms: int, ip: str) -> StoredBatch:
    events = [
        StoredEvent(event_id=f"00000000-0000-7000-8000-{i:012d}", type="request", ts=start_ms + i * 1000,
                    client_ts=start_ms + i * 1000, url=HOSTILE_PATH if i == 2 else f"/profiles/{i}",
                    name="/profiles/{id}", props=json.dumps({"method": "GET", "status": 404 if i == 2 else 200,
                                                              "duration_ms": 2.5, "bytes": 100}))
        for i in range(4)
    ]
    events.append(StoredEvent(event_id="00000000-0000-7000-9000-000000000001", type="auth", ts=start_ms + 5000,
                              client_ts=start_ms + 5000, name="signin",
                              props=json.dumps({"ok": False, "user_key": "ab" * 8, "user_display": "<b>a…@x.org</b>",
                                                "reason": "bad password"})))
    return StoredBatch(batch_id=f"b-{sid}", project_id=project_id, received_at=start_ms + 6000, session_id=sid,
                       anonymous_id="", ip=ip, country="NL", asn=64500, as_org="Example Hosting",
                       user_agent=HOSTILE_UA, browser="", device_type="bot", events=events, source="middleware")


def load(root: Path, runtime: Runtime, batches: list[StoredBatch]) -> None:
    spool = Spool(root / "spool", fsync="never")
    spool.start()
    for b in batches:
        spool.append_blocking(encode_batch(b), 10.0)
    spool.close()
    Loader(spool, runtime.store, runtime.blobs).load_once()


@pytest.fixture(scope="module")
def spool_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spool for the module, as its store is: segment numbers go on, so the loader loads each one."""
    return tmp_path_factory.mktemp("security_spool")


_visits = itertools.count(1)


@pytest.fixture
def world(app: Starlette, runtime: Runtime, clock: FakeClock, spool_root: Path) -> World:
    meta = runtime.meta
    site, other = meta.create_project("site").id, meta.create_project("other").id
    tokens = {}
    for role in ("viewer", "analyst", "owner"):
        user_id = make_user(meta, f"{role}@example.com", site, role=role)
        tokens[role] = accounts.create_api_token(meta, user_id, "t", "write")[1]
    outsider = make_user(meta, "outsider@example.com", other, role="owner")
    tokens["outsider"] = accounts.create_api_token(meta, outsider, "t", "write")[1]
    now = int(clock() * 1000)
    # A session and an address of their own per test: the store is shared by the module.
    n = next(_visits)
    sid, address = f"s-attacker-{n:04d}", f"203.0.113.{n}"
    load(spool_root, runtime, [request_batch(site, sid, now - 60_000, address)])
    cooldown = 900_000
    secret = install_secret(runtime.data_dir)
    made = {
        "brute": security.upsert_alert(meta, finding(site, "brute_force", "high", "ip", ip_key(secret, address),
                                                     address, now - 55_000, ((sid, now - 55_000),)),
                                       now, cooldown)[0].id,
        "spray": security.upsert_alert(meta, finding(site, "password_spraying", "medium", "username", "cd" * 8,
                                                     "<i>b…@example.com</i>", now - 30_000,
                                                     reason='spray of "<script>x</script>"'), now, cooldown)[0].id,
        "probe": security.upsert_alert(meta, finding(site, "probing", "low", "net", "203.0.113.0/24",
                                                     "203.0.113.0/24", now - 10_000), now, cooldown)[0].id,
        "elsewhere": security.upsert_alert(meta, finding(other, "scraping", "critical", "ip", "ff" * 8, "198.51.100.1",
                                                         now - 5_000), now, cooldown)[0].id,
    }
    return World(app, runtime, site, other, tokens, made, now, address)


def auth(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def base(world: World, project: int | None = None) -> str:
    return f"/api/v1/projects/{project or world.site}/security"


async def get(c: httpx.AsyncClient, world: World, path: str, role: str = "viewer", **params: Any) -> Any:
    answer = await c.get(base(world) + path, headers=auth(world, role), params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


async def test_signed_out_gets_401_and_an_outsider_404(world: World) -> None:
    async with client(world.app) as c:
        assert (await c.get(base(world) + "/overview")).status_code == 401
        assert (await c.get(base(world) + "/alerts", headers=auth(world, "outsider"))).status_code == 404
        own = await c.get(base(world, world.other) + "/alerts", headers=auth(world, "outsider"))
        assert [a["id"] for a in own.json()["alerts"]] == [world.alerts["elsewhere"]]


async def test_another_projects_alert_is_a_404_everywhere(world: World) -> None:
    theirs = world.alerts["elsewhere"]
    async with client(world.app) as c:
        h = auth(world, "owner")
        assert (await c.get(f"{base(world)}/alerts/{theirs}", headers=h)).status_code == 404
        labelled = await c.patch(f"{base(world)}/alerts/{theirs}", headers=h, json={"state": "resolved"})
        assert labelled.status_code == 404
        decided = await c.post(f"{base(world)}/alerts/{theirs}/decision", headers=h, json={"action": "block"})
        assert decided.status_code == 404
    found = security.alert(world.runtime.meta, world.other, theirs)
    assert found is not None and found.state == "open"
    assert security.decisions(world.runtime.meta, world.other) == []


async def test_alert_list_filters_and_pages(world: World) -> None:
    async with client(world.app) as c:
        everything = await get(c, world, "/alerts")
        ids = [a["id"] for a in everything["alerts"]]
        assert ids == [world.alerts["probe"], world.alerts["spray"], world.alerts["brute"]], "newest first, own only"
        assert everything["next_cursor"] is None
        assert [a["id"] for a in (await get(c, world, "/alerts", severity="high"))["alerts"]] == [world.alerts["brute"]]
        assert [a["id"] for a in (await get(c, world, "/alerts", rule="probing"))["alerts"]] == [world.alerts["probe"]]
        kind = await get(c, world, "/alerts", entity_kind="username")
        assert [a["id"] for a in kind["alerts"]] == [world.alerts["spray"]]
        recent = await get(c, world, "/alerts", since=str(world.now_ms - 20_000))
        assert [a["id"] for a in recent["alerts"]] == [world.alerts["probe"]]
        assert (await get(c, world, "/alerts", state="resolved"))["alerts"] == []
        first = await get(c, world, "/alerts", limit="2")
        assert len(first["alerts"]) == 2 and first["next_cursor"]
        second = await get(c, world, "/alerts", limit="2", cursor=first["next_cursor"])
        assert [a["id"] for a in first["alerts"] + second["alerts"]] == ids and second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "closed"}, "state"),
        ({"severity": "huge"}, "severity"),
        ({"entity_kind": "planet"}, "entity_kind"),
        ({"rule": "x' OR 1=1 --"}, "rule"),
        ({"since": "yesterday"}, "since"),
        ({"since": "9" * 30}, "since"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
    ],
)
async def test_bad_alert_filters_are_400_naming_the_parameter(world: World, params: dict[str, str], field: str) -> None:
    async with client(world.app) as c:
        answer = await c.get(base(world) + "/alerts", headers=auth(world, "viewer"), params=params)
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text


async def test_alert_detail_has_reasons_risk_evidence_at_the_moment_and_the_request_timeline(world: World) -> None:
    async with client(world.app) as c:
        detail = await get(c, world, f"/alerts/{world.alerts['brute']}")
    assert detail["reasons"] == [f"23 failed sign-ins for {world.address} in 5 min (threshold 10)"]
    assert detail["numbers"] == {"failures": 23.0, "threshold": 10.0}
    assert 0 < detail["risk"]["score"] <= 100 and detail["risk"]["reasons"]
    [evidence] = detail["evidence"]
    sid = evidence["session_id"]
    assert evidence["started_at"] == world.now_ms - 60_000
    assert evidence["offset_s"] == 5 and evidence["replay_url"] == f"/projects/{world.site}/sessions/{sid}?t=5"
    assert evidence["recorded"] is False, "a client without a browser: the request timeline is the evidence"
    timeline = evidence["timeline"]
    assert [t["type"] for t in timeline] == ["request"] * 4 + ["auth"]
    assert timeline[2]["url"] == HOSTILE_PATH and timeline[2]["status"] == 404 and timeline[2]["method"] == "GET"
    assert timeline[4]["ok"] is False and timeline[4]["user"] == "<b>a…@x.org</b>"
    assert timeline[0]["user_agent"] == HOSTILE_UA


async def test_only_analysts_and_owners_label_alerts_and_it_is_audited(world: World) -> None:
    url = f"{base(world)}/alerts/{world.alerts['brute']}"
    async with client(world.app) as c:
        refused = await c.patch(url, headers=auth(world, "viewer"), json={"state": "resolved"})
        assert refused.status_code == 403
        bad = await c.patch(url, headers=auth(world, "analyst"), json={"state": "closed"})
        assert bad.status_code == 400 and bad.json()["field"] == "state"
        assert (await c.patch(url, headers=auth(world, "analyst"), content=b"[1]")).status_code == 400
        done = await c.patch(url, headers=auth(world, "analyst"), json={"state": "false_positive"})
        assert done.status_code == 200 and done.json()["state"] == "false_positive"
        assert (await get(c, world, "/alerts", state="false_positive"))["alerts"][0]["id"] == world.alerts["brute"]
    entries = audit.entries(world.runtime.meta, project_id=world.site, action="alert_state_changed")
    assert [(e.target, e.details) for e in entries] == [
        (str(world.alerts["brute"]), {"state": "false_positive"})
    ]


async def test_a_decision_from_an_alert_is_what_the_site_then_reads(world: World) -> None:
    async with client(world.app) as c:
        url = f"{base(world)}/alerts/{world.alerts['brute']}/decision"
        assert (await c.post(url, headers=auth(world, "viewer"), json={"action": "block"})).status_code == 403
        bad = await c.post(url, headers=auth(world, "analyst"), json={"action": "block", "ttl_s": -5})
        assert bad.status_code == 400 and bad.json()["field"] == "ttl_s"
        bad = await c.post(url, headers=auth(world, "analyst"), json={"action": "nuke"})
        assert bad.status_code == 400 and bad.json()["field"] == "action"
        made = await c.post(url, headers=auth(world, "analyst"), json={"action": "block", "ttl_s": 600})
        assert made.status_code == 201, made.text
        decision = made.json()
        assert decision["scope"] == "ip" and decision["active"] and decision["alert_id"] == world.alerts["brute"]
        assert decision["expires_ms"] == world.now_ms + 600_000
        site = world.runtime.meta.project(world.site)
        assert site is not None
        verdict = await c.get("/api/v1/decisions", params={"ip": world.address},
                              headers={"Authorization": f"Bearer {site.server_key}"})
        assert verdict.json()["action"] == "block" and verdict.json()["decision_id"] == decision["id"]
        username = f"{base(world)}/alerts/{world.alerts['spray']}/decision"
        refused = await c.post(username, headers=auth(world, "analyst"), json={"action": "block"})
        assert refused.status_code == 400 and refused.json()["field"] == "entity"
        listed = await get(c, world, "/decisions", active="1")
        assert [d["id"] for d in listed["decisions"]] == [decision["id"]]
        detail = await get(c, world, f"/alerts/{world.alerts['brute']}")
        assert [d["id"] for d in detail["decisions"]] == [decision["id"]]


async def test_decisions_by_hand_and_revoking_them(world: World) -> None:
    h = auth(world, "analyst")
    async with client(world.app) as c:
        for body, field in (
            ({"scope": "ip", "value": "not-an-ip", "action": "block"}, "value"),
            ({"scope": "net", "value": "300.1.2.0/24", "action": "block"}, "value"),
            ({"scope": "planet", "value": "x", "action": "block"}, "scope"),
            ({"scope": "user", "value": "", "action": "block"}, "value"),
            ({"scope": "user", "value": "u1", "action": "block", "ttl_s": "soon"}, "ttl_s"),
            ({"scope": "user", "value": "u1", "action": "block", "reason": 5}, "reason"),
        ):
            answer = await c.post(base(world) + "/decisions", headers=h, json=body)
            assert answer.status_code == 400 and answer.json()["field"] == field, (body, answer.text)
        made = await c.post(base(world) + "/decisions", headers=h,
                            json={"scope": "net", "value": "198.51.100.7/24", "action": "challenge", "ttl_s": 0})
        assert made.status_code == 201
        decision = made.json()
        assert decision["value"] == "198.51.100.0/24" and decision["expires_ms"] is None
        one = f"/decisions/{decision['id']}"
        assert (await c.delete(base(world) + one, headers=auth(world, "viewer"))).status_code == 403
        other = await c.delete(base(world, world.other) + one, headers=auth(world, "outsider"))
        assert other.status_code == 404
        assert (await c.delete(f"{base(world)}/decisions/{decision['id']}", headers=h)).status_code == 204
        assert (await get(c, world, "/decisions", active="1"))["decisions"] == []
        assert (await get(c, world, "/decisions"))["decisions"][0]["revoked"] is True


async def test_the_allow_list(world: World) -> None:
    h = auth(world, "analyst")
    async with client(world.app) as c:
        bad = await c.post(base(world) + "/allowlist", headers=h, json={"kind": "cidr", "value": "10.0.0.0/99"})
        assert bad.status_code == 400 and bad.json()["field"] == "value"
        bad = await c.post(base(world) + "/allowlist", headers=h, json={"kind": "asn", "value": "1"})
        assert bad.status_code == 400 and bad.json()["field"] == "kind"
        refused = await c.post(base(world) + "/allowlist", headers=auth(world, "viewer"),
                               json={"kind": "ip", "value": "192.0.2.1"})
        assert refused.status_code == 403
        made = await c.post(base(world) + "/allowlist", headers=h,
                            json={"kind": "ip", "value": " 192.0.2.1 ", "note": "uptime monitor"})
        assert made.status_code == 201 and made.json()["value"] == "192.0.2.1"
        entries = (await get(c, world, "/allowlist"))["entries"]
        assert [(e["kind"], e["value"], e["note"]) for e in entries] == [("ip", "192.0.2.1", "uptime monitor")]
        gone = await c.delete(f"{base(world, world.other)}/allowlist/{made.json()['id']}",
                              headers=auth(world, "outsider"))
        assert gone.status_code == 404
        assert (await c.delete(f"{base(world)}/allowlist/{made.json()['id']}", headers=h)).status_code == 204
        assert (await get(c, world, "/allowlist"))["entries"] == []


async def test_an_entitys_timeline_and_risk(world: World) -> None:
    async with client(world.app) as c:
        brute = await get(c, world, f"/alerts/{world.alerts['brute']}")
        sid = brute["evidence"][0]["session_id"]
        session = await get(c, world, f"/entities/session/{sid}")
        assert len(session["events"]) == 5 and session["sessions"][0]["session_id"] == sid
        ip = await get(c, world, f"/entities/ip/{brute['entity_value']}")
        assert ip["label"] == world.address and ip["risk"]["score"] > 0
        assert [a["id"] for a in ip["alerts"]] == [world.alerts["brute"]]
        assert len(ip["events"]) == 5, "an address's requests, found by its stored form"
        net = await get(c, world, "/entities/net/203.0.113.0/24")
        assert [a["id"] for a in net["alerts"]] == [world.alerts["probe"]] and len(net["events"]) >= 5
        asn = await get(c, world, "/entities/asn/AS64500")
        assert {e["session_id"] for e in asn["events"]} >= {sid}
        hostile = await get(c, world, "/entities/user/" + "a'\\{x}%22--")
        assert hostile["events"] == [] and hostile["alerts"] == [] and hostile["value"] == "a'\\{x}\"--"
        bad = await c.get(base(world) + "/entities/planet/x", headers=auth(world, "viewer"))
        assert bad.status_code == 400 and bad.json()["field"] == "kind"
        bad = await c.get(base(world) + "/entities/ip/" + "x" * 600, headers=auth(world, "viewer"))
        assert bad.status_code == 400 and bad.json()["field"] == "value"


async def test_overview(world: World) -> None:
    async with client(world.app) as c:
        found = await get(c, world, "/overview")
        assert found["alerts"] == 3
        assert found["open_by_severity"] == {"low": 1, "medium": 1, "high": 1, "critical": 0}
        assert {rule: sum(counts) for rule, counts in found["by_rule"].items()} == {
            "brute_force": 1, "password_spraying": 1, "probing": 1
        }
        assert found["top_networks"][0]["asn"] == 64500 and found["top_networks"][0]["sessions"] == 1
        assert found["top_countries"] == [{"country": "NL", "sessions": 1}]
        assert len((await get(c, world, "/overview", window="30d"))["buckets"]) in (30, 31)
        bad = await c.get(base(world) + "/overview", headers=auth(world, "viewer"), params={"window": "1y"})
        assert bad.status_code == 400 and bad.json()["field"] == "window"


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


async def test_webhooks_are_the_owners_and_the_test_button_sends_a_signed_delivery(world: World, receiver: str) -> None:
    url = base(world) + "/webhooks"
    async with client(world.app) as c:
        for role in ("viewer", "analyst"):
            assert (await c.get(url, headers=auth(world, role))).status_code == 403
            assert (await c.post(url, headers=auth(world, role), json={"url": receiver})).status_code == 403
        h = auth(world, "owner")
        for bad in ("ftp://example.com/x", "javascript:alert(1)", "http://", "http://hitmetrix.test/hook",
                    "http://127.0.0.1:8000/api", "https://u:p@example.com/"):
            answer = await c.post(url, headers=h, json={"url": bad})
            assert answer.status_code == 400 and answer.json()["field"] == "url", bad
        made = await c.post(url, headers=h, json={"url": receiver})
        assert made.status_code == 201
        hook = made.json()
        assert hook["secret"].startswith("whsec_")
        assert [w["id"] for w in (await c.get(url, headers=h)).json()["webhooks"]] == [hook["id"]]
        tested = await c.post(f"{url}/{hook['id']}/test", headers=h)
        assert tested.json() == {"ok": True, "status": 200, "error": ""}
        [(headers, body)] = Receiver.received
        signed = headers["x-hitmetrix-timestamp"].encode() + b"." + body
        expected = hmac.new(hook["secret"].encode(), signed, hashlib.sha256).hexdigest()
        assert headers["x-hitmetrix-signature"] == f"sha256={expected}"
        assert json.loads(body)["event"] == "test"
        outsider = await c.post(f"{base(world, world.other)}/webhooks/{hook['id']}/test",
                                headers=auth(world, "outsider"))
        assert outsider.status_code == 404
        assert (await c.delete(f"{url}/{hook['id']}", headers=h)).status_code == 204
        assert (await c.get(url, headers=h)).json()["webhooks"] == []


def test_every_security_route_is_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    for path, methods in {
        "/overview": {"get"}, "/alerts": {"get"}, "/alerts/{alert_id}": {"get", "patch"},
        "/alerts/{alert_id}/decision": {"post"}, "/decisions": {"get", "post"}, "/decisions/{decision_id}": {"delete"},
        "/allowlist": {"get", "post"}, "/allowlist/{entry_id}": {"delete"}, "/entities/{kind}/{value}": {"get"},
        "/webhooks": {"get", "post"}, "/webhooks/{webhook_id}": {"delete"}, "/webhooks/{webhook_id}/test": {"post"},
    }.items():
        assert set(paths["/api/v1/projects/{project_id}/security" + path]) == methods, path
