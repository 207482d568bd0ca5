"""The security pages on the real app and real chDB: sign-in and roles, project isolation, filters kept in the
URL, hostile values rendered as text, state and decision forms, the entity page and the webhooks page."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.detect.keys import install_secret, ip_key
from hitmetrix.runtime import Runtime
from hitmetrix.store import security
from tests.web.helpers import FakeClock, client, make_user, sign_in
from tests.web.test_security_api import HOSTILE_PATH, HOSTILE_UA, finding, load, request_batch

pytestmark = pytest.mark.anyio

_visits = itertools.count(1)


@dataclass
class Site:
    app: Starlette
    runtime: Runtime
    site: int
    other: int
    brute: int
    spray: int
    elsewhere: int
    sid: str


@pytest.fixture(scope="module")
def spool_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security_pages_spool")


@pytest.fixture
def site(app: Starlette, runtime: Runtime, clock: FakeClock, spool_root: Path) -> Site:
    meta = runtime.meta
    site, other = meta.create_project("site").id, meta.create_project("other").id
    for role in ("viewer", "analyst", "owner"):
        make_user(meta, f"{role}@example.com", site, role=role)
    make_user(meta, "outsider@example.com", other, role="owner")
    now = int(clock() * 1000)
    n = next(_visits)
    sid, address = f"s-pages-{n:04d}", f"192.0.2.{n}"
    load(spool_root, runtime, [request_batch(site, sid, now - 60_000, address)])
    key = ip_key(install_secret(runtime.data_dir), address)
    brute = security.upsert_alert(meta, finding(site, "brute_force", "high", "ip", key, address, now - 55_000,
                                                ((sid, now - 55_000),)), now, 900_000)[0].id
    spray = security.upsert_alert(meta, finding(site, "password_spraying", "medium", "username", "cd" * 8,
                                                '<img src=x onerror="alert(1)">', now - 30_000,
                                                reason='spray of "<script>alert(2)</script>"'), now, 900_000)[0].id
    elsewhere = security.upsert_alert(meta, finding(other, "scraping", "critical", "ip", "ff" * 8, "198.51.100.1",
                                                    now - 5_000), now, 900_000)[0].id
    return Site(app, runtime, site, other, brute, spray, elsewhere, sid)


@contextlib.asynccontextmanager
async def signed_in(s: Site, role: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with client(s.app) as c:
        yield c, await sign_in(c, f"{role}@example.com")


def no_raw_markup(page: str) -> None:
    for raw in ("<script>alert", "<img src=x", '<script>alert("ua")'):
        assert raw not in page, raw


async def test_signed_out_is_sent_to_sign_in_and_outsiders_get_404(site: Site) -> None:
    async with client(site.app) as c:
        for path in ("", "/alerts", f"/alerts/{site.brute}", f"/entities/session/{site.sid}", "/webhooks"):
            answer = await c.get(f"/projects/{site.site}/security{path}")
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), path
    async with signed_in(site, "outsider") as (c, _):
        assert (await c.get(f"/projects/{site.site}/security")).status_code == 404
        assert (await c.get(f"/projects/{site.other}/security/alerts/{site.brute}")).status_code == 404, \
            "an alert of another project, through a project of one's own"


async def test_the_overview_draws_alerts_over_time_and_the_top_sources(site: Site) -> None:
    async with signed_in(site, "viewer") as (c, _):
        page = await c.get(f"/projects/{site.site}/security")
    assert page.status_code == 200
    assert f'href="/projects/{site.site}/security">Security</a>' in page.text, "the project navigation links it"
    assert "content-security-policy" in page.headers
    chart = page.text[page.text.index('id="alerts-over-time"'):page.text.index('id="top-entities"')]
    assert len(re.findall(r"<rect ", chart)) == 2, "one bar piece per rule and hour with alerts"
    assert "brute_force" in chart and "password_spraying" in chart
    assert "AS64500" in page.text and "Example Hosting" in page.text and ">NL<" in page.text
    no_raw_markup(page.text)
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text


async def test_the_alert_list_keeps_its_filters_in_the_url(site: Site) -> None:
    async with signed_in(site, "viewer") as (c, _):
        page = await c.get(f"/projects/{site.site}/security/alerts", params={"severity": "high", "state": "open"})
        assert page.status_code == 200
        assert f'data-alert="{site.brute}"' in page.text and f'data-alert="{site.spray}"' not in page.text
        assert '<option value="high" selected>' in page.text and '<option value="open" selected>' in page.text
        everything = await c.get(f"/projects/{site.site}/security/alerts")
        assert f'data-alert="{site.spray}"' in everything.text
        assert f'data-alert="{site.elsewhere}"' not in everything.text
        no_raw_markup(everything.text)
        bad = await c.get(f"/projects/{site.site}/security/alerts", params={"severity": "<b>huge</b>"})
        assert bad.status_code == 400 and "severity must be one of" in bad.text and "<b>huge" not in bad.text


async def test_the_alert_page_shows_reasons_evidence_and_the_request_timeline_as_text(site: Site) -> None:
    async with signed_in(site, "viewer") as (c, _):
        page = await c.get(f"/projects/{site.site}/security/alerts/{site.brute}")
        spray = await c.get(f"/projects/{site.site}/security/alerts/{site.spray}")
    assert page.status_code == 200
    assert "23 failed sign-ins for 192.0.2." in page.text
    assert f'href="/projects/{site.site}/sessions/{site.sid}?t=5"' in page.text, "the session at the moment"
    assert 'class="table request-timeline"' in page.text
    assert "sqlmap/1.7" in page.text and "&lt;script&gt;alert(&#34;ua&#34;)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text, HOSTILE_PATH
    no_raw_markup(page.text)
    assert 'id="actions"' not in page.text, "a viewer gets no buttons"
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in spray.text
    no_raw_markup(spray.text)
    assert HOSTILE_UA not in page.text


async def test_analysts_label_and_decide_from_the_alert_page_viewers_may_not(site: Site) -> None:
    base = f"/projects/{site.site}/security/alerts/{site.brute}"
    async with signed_in(site, "viewer") as (viewer, csrf):
        refused = await viewer.post(base + "/state", data={"state": "resolved", "csrf_token": csrf})
        assert refused.status_code == 403
    async with signed_in(site, "analyst") as (c, csrf):
        page = await c.get(base)
        assert 'id="actions"' in page.text and 'data-state="resolved"' in page.text
        no_csrf = await c.post(base + "/state", data={"state": "resolved"})
        assert no_csrf.status_code == 403
        done = await c.post(base + "/state", data={"state": "acknowledged", "csrf_token": csrf})
        assert done.status_code == 303 and done.headers["location"] == base + "?done=state"
        bad = await c.post(base + "/state", data={"state": "gone", "csrf_token": csrf})
        assert bad.status_code == 400
        decided = await c.post(base + "/decision", data={"action": "challenge", "ttl_s": "900", "csrf_token": csrf})
        assert decided.status_code == 303
        after = await c.get(base)
        assert 'id="alert-state">acknowledged<' in after.text and 'id="decisions"' in after.text
        username = f"/projects/{site.site}/security/alerts/{site.spray}"
        assert "Decisions are made about" in (await c.get(username)).text
    alert = security.alert(site.runtime.meta, site.site, site.brute)
    assert alert is not None and alert.state == "acknowledged"
    [decision] = security.decisions(site.runtime.meta, site.site)
    assert (decision.action, decision.scope, decision.alert_id) == ("challenge", "ip", site.brute)
    assert decision.expires_ms == int(site.runtime.clock() * 1000) + 900_000


async def test_the_entity_page(site: Site) -> None:
    async with signed_in(site, "viewer") as (c, _):
        page = await c.get(f"/projects/{site.site}/security/entities/session/{site.sid}")
        assert page.status_code == 200 and site.sid in page.text
        assert page.text.count("<tr><td class=\"nowrap\">") >= 5, "the session's requests and sign-ins"
        no_raw_markup(page.text)
        spray = await c.get(f"/projects/{site.site}/security/entities/username/{'cd' * 8}")
        assert f'data-alert="{site.spray}"' in spray.text and "Risk" in spray.text
        no_raw_markup(spray.text)
        bad = await c.get(f"/projects/{site.site}/security/entities/planet/x")
        assert bad.status_code == 400


async def test_webhooks_page_is_the_owners(site: Site) -> None:
    for role in ("viewer", "analyst"):
        async with signed_in(site, role) as (c, _):
            assert (await c.get(f"/projects/{site.site}/security/webhooks")).status_code == 403
    async with signed_in(site, "owner") as (c, csrf):
        url = f"/projects/{site.site}/security/webhooks"
        refused = await c.post(url, data={"op": "add", "url": "http://hitmetrix.test/x", "csrf_token": csrf})
        assert refused.status_code == 400 and "points at this dashboard" in refused.text
        added = await c.post(url, data={"op": "add", "url": "https://chat.example.com/<b>hook</b>",
                                        "csrf_token": csrf})
        assert added.status_code == 200 and "whsec_" in added.text
        assert "https://chat.example.com/&lt;b&gt;hook&lt;/b&gt;" in added.text
        page = await c.get(f"/projects/{site.site}/security")
        assert f'href="/projects/{site.site}/security/webhooks"' in page.text
