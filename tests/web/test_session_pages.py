"""The session list and replay pages of a real server: filters in the URL, errors, pagination, access."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, gzip_b64, new_id, wait_for

pytestmark = pytest.mark.integration

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
HOME_SESSIONS = 53  # more than one page of 50
PASSWORD = "correct horse battery staple"


@dataclass
class Site:
    server: ServerProcess
    client: httpx.Client  # signed in as a member of `shop` (not of `other`)
    shop: int
    other: int
    empty: int
    shop_key: str
    checkout_sids: list[str]
    home_sids: list[str]

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(self.server.url + path, params=params)


def post_session(server: ServerProcess, key: str, *, path: str, user_agent: str, errors: int, start_ms: int) -> str:
    sid = new_id()
    url = f"https://shop.example{path}"
    events = [{"type": "pageview", "ts": start_ms, "url": url}]
    events += [{"type": "click", "ts": start_ms + 1000 + i, "url": url, "selector": "#b"} for i in range(2)]
    events += [
        {"type": "error", "ts": start_ms + 2000 + i, "url": url, "props": {"message": "x"}} for i in range(errors)
    ]
    rrweb = [
        {"type": 4, "timestamp": start_ms, "data": {"href": url}},
        {"type": 2, "timestamp": start_ms + 1, "data": {}},
    ]
    chunk = {"seq": 0, "first_ts": start_ms, "last_ts": start_ms + 1, "count": 2, "data": gzip_b64(rrweb)}
    body = {"session_id": sid, "anonymous_id": "a" + sid, "sent_at": int(time.time() * 1000), "events": events,
            "recording": [chunk]}
    answer = httpx.post(
        server.url + "/api/v1/batch",
        params={"key": key},
        content=json.dumps(body),
        headers={"User-Agent": user_agent, "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return sid


def sign_in(server: ServerProcess, email: str, password: str) -> httpx.Client:
    client = httpx.Client(timeout=30)
    form = client.get(server.url + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = client.post(
        server.url + "/login", data={"email": email, "password": password, "csrf_token": token.group(1), "next": ""}
    )
    assert answer.status_code in (302, 303), answer.text
    return client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir: Path = tmp_path_factory.mktemp("pages") / "data"
    meta = MetaStore("", data_dir)
    shop, other, empty = (meta.create_project(name) for name in ("shop", "other", "empty"))
    user = accounts.create_user(meta, "viewer@example.test", PASSWORD)
    accounts.add_member(meta, shop.id, user.id)
    accounts.add_member(meta, empty.id, user.id)
    meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    try:
        start = int(time.time() * 1000) - 3_600_000
        checkout = [
            post_session(server, shop.public_key, path="/checkout", user_agent=FIREFOX, errors=1, start_ms=start + i)
            for i in range(3)
        ]
        home = [
            post_session(server, shop.public_key, path="/home", user_agent=CHROME, errors=0, start_ms=start + 100 + i)
            for i in range(HOME_SESSIONS)
        ]
        post_session(server, other.public_key, path="/home", user_agent=CHROME, errors=0, start_ms=start)

        def loaded() -> bool:
            rows = server.api(f"/api/v1/projects/{shop.id}/sessions?limit=1000").json()["sessions"]
            return len(rows) == HOME_SESSIONS + 3

        wait_for(loaded, 30, 0.2, what="every session in the store")
        client = sign_in(server, "viewer@example.test", PASSWORD)
        yield Site(server, client, shop.id, other.id, empty.id, shop.public_key, checkout, home)
        client.close()
    finally:
        server.stop()


def listed(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr class="hm-row" data-session="([^"]+)"', page.text)


def field_value(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page.text)
    return html.unescape(found.group(1)) if found else ""


def link(page: httpx.Response, css_class: str) -> str | None:
    found = re.search(rf'<a class="{css_class}" href="([^"]+)"', page.text)
    return html.unescape(found.group(1)) if found else None


def test_filters_round_trip_through_the_url(site: Site) -> None:
    page = site.get(f"/projects/{site.shop}/sessions", url="checkout", has_errors="1", browser="Firefox",
                    min_duration="1", max_duration="3600")
    assert page.status_code == 200, page.text
    assert sorted(listed(page)) == sorted(site.checkout_sids)
    # The form shows the filters it applied, so submitting it again gives the same list.
    assert field_value(page, "url") == "checkout"
    assert field_value(page, "min_duration") == "1"
    assert field_value(page, "max_duration") == "3600"
    assert re.search(r'name="has_errors" value="1" checked', page.text)
    assert re.search(r'<option value="Firefox" selected>', page.text)
    assert f'href="/projects/{site.shop}/sessions">Clear filters' in page.text
    assert link(page, "hm-older") is None

    assert listed(site.get(f"/projects/{site.shop}/sessions", browser="Chrome", has_errors="1")) == []
    assert len(listed(site.get(f"/projects/{site.shop}/sessions", url="HOME"))) == 50, "url is contains, any case"
    rows = listed(site.get(f"/projects/{site.shop}/sessions", min_duration="5"))
    assert rows == [], "every session lasts about 2 s"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "from must be a date like"),
        ({"country": "Germany"}, "country must be a two-letter code"),
        ({"country": "1x"}, "country must be a two-letter code"),
        ({"device": "toaster"}, "device must be one of"),
        ({"min_duration": "soon"}, "min_duration must be a number of seconds"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from must not be after to"),
        ({"cursor": "!!!"}, "cursor is not valid"),
    ],
)
def test_a_bad_filter_is_a_clear_400(site: Site, params: dict[str, str], message: str) -> None:
    page = site.get(f"/projects/{site.shop}/sessions", **params)
    assert page.status_code == 400
    assert "text/html" in page.headers["content-type"]
    alert = re.search(r'<div class="hm-error" role="alert">(.*?)</div>', page.text, re.S)
    assert alert and message in html.unescape(alert.group(1)), page.text
    assert listed(page) == []
    for name, value in params.items():
        if name != "cursor":
            assert field_value(page, name) == value or f'value="{value}" selected' in page.text, name


def test_older_link_keeps_the_filters(site: Site) -> None:
    first = site.get(f"/projects/{site.shop}/sessions", url="/home", browser="Chrome")
    assert first.status_code == 200
    first_rows = listed(first)
    assert len(first_rows) == 50
    older = link(first, "hm-older")
    assert older, "a full page links to older sessions"
    query = parse_qs(urlsplit(older).query)
    assert query["url"] == ["/home"] and query["browser"] == ["Chrome"] and query["cursor"]

    second = site.client.get(site.server.url + f"/projects/{site.shop}/sessions" + older)
    assert second.status_code == 200
    second_rows = listed(second)
    assert len(second_rows) == HOME_SESSIONS - 50
    assert sorted(first_rows + second_rows) == sorted(site.home_sids), "no session lost or shown twice"
    assert link(second, "hm-older") is None
    assert field_value(second, "url") == "/home"
    newest = re.search(r'<a href="([^"]+)">← Newest</a>', second.text)
    assert newest, second.text
    assert parse_qs(urlsplit(html.unescape(newest.group(1))).query) == {"url": ["/home"], "browser": ["Chrome"]}


def test_rows_link_to_the_replay_page_which_renders_its_shell(site: Site) -> None:
    page = site.get(f"/projects/{site.shop}/sessions", url="checkout")
    sid = site.checkout_sids[0]
    assert f'href="/projects/{site.shop}/sessions/{sid}"' in page.text
    assert "Firefox" in page.text and "/checkout" in page.text and "hm-badge-error" in page.text

    replay = site.get(f"/projects/{site.shop}/sessions/{sid}")
    assert replay.status_code == 200
    assert "<script>" not in replay.text, "no inline script: the CSP allows only script files"
    assert '<script src="/static/dashboard/replay.js" defer></script>' in replay.text
    root = re.search(r'<div id="replay-root"[^>]*>', replay.text)
    assert root, replay.text
    attrs = dict(re.findall(r'data-([a-z]+)=(?:"([^"]*)"|\'[^\']*\')', root.group(0)))
    assert attrs["project"] == str(site.shop) and attrs["session"] == sid
    chunks = json.loads(html.unescape(re.search(r"data-chunks='([^']*)'", root.group(0)).group(1)))  # type: ignore[union-attr]
    assert [c["seq"] for c in chunks] == [0]
    assert set(chunks[0]) == {"seq", "first_ts", "last_ts", "event_count", "bytes"}, "no blob paths leak"
    assert "https://shop.example/checkout" in replay.text


def test_unknown_sessions_and_other_projects_are_404(site: Site) -> None:
    assert site.get(f"/projects/{site.shop}/sessions/{new_id()}").status_code == 404
    assert site.get(f"/projects/{site.shop}/sessions/not a session").status_code == 404
    assert site.get(f"/projects/{site.other}/sessions").status_code == 404
    assert site.get("/projects/9999/sessions").status_code == 404
    other_sid = site.checkout_sids[0]
    assert site.get(f"/projects/{site.other}/sessions/{other_sid}").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(site: Site) -> None:
    answer = httpx.get(site.server.url + f"/projects/{site.shop}/sessions?url=checkout", timeout=30)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
    assert "url%3Dcheckout" in answer.headers["location"], "the filters survive signing in"


def test_an_empty_project_shows_the_tracker_snippet(site: Site) -> None:
    page = site.get(f"/projects/{site.empty}/sessions")
    assert page.status_code == 200
    assert "No sessions recorded yet" in page.text
    meta_key = re.search(r'data-key=&#34;(hm_pk_[^&]+)&#34;', page.text)
    assert meta_key, page.text
    assert f"{site.server.url}/hm.js" in page.text
