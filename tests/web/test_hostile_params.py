"""Hostile path and query parameters against a real server: each is a 4xx naming what is wrong, never a 500.

Ids past 64 bits in every `{…:int}` route (taken from the app's routing
table, so a route added later is covered), quotes, backslashes, braces and NUL
in every session-list filter (data, not SQL: they match nothing, or exactly
what holds them), dates, durations, limits and cursors out of range; JSON
bodies nested too deeply or of the wrong types, and rejected form values (a
400 page that keeps what was typed). Also: private answers are never cached,
and signing out clears the browser's cache.
The traceback gate (tests/conftest.py) fails any case that made the server log
an error, even when the answer looked right.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.convertors import IntegerConvertor

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from hitmetrix.web.app import build_app
from tests.support import ServerProcess, make_batch, wait_for
from tests.web.helpers import close_runtime, endpoints, open_runtime

pytestmark = pytest.mark.integration

ODD_USER = "o'brien\\{p1:String}\"x"  # quote, backslash, braces: stored and found as plain text
PASSWORD = "hostile params password"
TEXT_FILTERS = ("url", "browser", "os", "user")
ODD_TEXT = ["'", '"', "\\", "a\\", "\\N", "\\'", "{}", "{p1:String}", "a\x00b", "\x00", "a\tb", "a\nb", "%00", "x" * 64]
TOO_BIG_IDS = [str(2**63), str(2**64), "99999999999999999999999", "1" + "0" * 18, "0" * 30 + "1"]


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class Site:
    server: ServerProcess
    project: int
    session_id: str
    odd_session_id: str
    email: str
    user_token: str  # the member's personal write token

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.admin_token}"}

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.server.url + path, params=params, headers=self.admin, timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir: Path = tmp_path_factory.mktemp("hostile") / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("hostile")
    user = accounts.create_user(meta, "viewer@example.test", PASSWORD)
    accounts.add_member(meta, project.id, user.id, "owner")
    _, user_token = accounts.create_api_token(meta, user.id, "hostile", "write")
    meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    try:
        plain, odd = make_batch(chunks=1, user_id="plain-user"), make_batch(chunks=1, user_id=ODD_USER)
        for batch in (plain, odd):
            answer = httpx.post(server.url + "/api/v1/batch", params={"key": project.public_key}, json=batch)
            assert answer.status_code == 200, answer.text

        def stored() -> bool:
            found = server.api(f"/api/v1/projects/{project.id}/sessions")
            return found.status_code == 200 and len(found.json()["sessions"]) == 2

        wait_for(stored, 30, 0.1, what="both sessions in the store")
        yield Site(server, project.id, plain["session_id"], odd["session_id"], "viewer@example.test", user_token)
    finally:
        server.stop()


def listed_api(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [row["session_id"] for row in answer.json()["sessions"]]


def listed_page(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return re.findall(r'<tr class="hm-row" data-session="([^"]+)"', answer.text)


def assert_bad_parameter(site: Site, name: str, value: str) -> None:
    """A 400 naming the parameter, from the API (JSON) and from the page (HTML)."""
    api = site.get(f"/api/v1/projects/{site.project}/sessions", {name: value})
    assert api.status_code == 400, f"{name}={value!r}: {api.status_code} {api.text}"
    assert api.json()["field"] == name and name in api.json()["error"], api.text
    if name == "limit":  # the page has a fixed page size
        return
    page = site.get(f"/projects/{site.project}/sessions", {name: value})
    assert page.status_code == 400, f"{name}={value!r}: {page.status_code}"
    alert = re.search(r'<div class="hm-error" role="alert">(.*?)</div>', page.text, re.S)
    assert alert and name in html.unescape(alert.group(1)), page.text


# --- ids past 64 bits -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def int_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, list[str]]]:
    """(path template, method, its integer parameters) of every route of the real app that takes an id."""
    runtime = open_runtime(tmp_path_factory.mktemp("routes") / "data", demo=True)
    try:
        found = []
        for path, route, method in endpoints(build_app(runtime)):
            ints = [name for name, conv in route.param_convertors.items() if isinstance(conv, IntegerConvertor)]
            if ints:
                found.append((path, method, ints))
    finally:
        close_runtime(runtime)
    assert len(found) >= 12, found  # a broken walk must not pass by checking nothing
    return found


def fill(path: str, site: Site, values: dict[str, str]) -> str:
    known = {"project_id": str(site.project), "session_id": site.session_id, "seq": "0", **values}
    return re.sub(r"{([a-z_]+)(?::[a-z]+)?}", lambda m: known.get(m.group(1), "1"), path)


@pytest.mark.parametrize("huge", TOO_BIG_IDS)
def test_an_id_past_64_bits_is_404_in_every_int_route(
    site: Site, int_routes: list[tuple[str, str, list[str]]], huge: str
) -> None:
    wrong = []
    for path, method, ints in int_routes:
        for name in ints:
            url = fill(path, site, {name: huge})
            answer = httpx.request(method, site.server.url + url, headers=site.admin, timeout=30)
            api = path.startswith("/api/")
            kind = "application/json" if api else "text/html"
            if answer.status_code != 404 or not answer.headers["content-type"].startswith(kind):
                wrong.append(f"{method} {url}: {answer.status_code} {answer.headers.get('content-type')}")
            elif api and method != "HEAD" and not answer.json().get("error"):
                wrong.append(f"{method} {url}: no error message")
    assert wrong == []


@pytest.mark.parametrize("fits", [str(2**32), str(2**63 - 1)[:18], "0"])
def test_an_id_that_fits_but_names_nothing_is_never_a_5xx(
    site: Site, int_routes: list[tuple[str, str, list[str]]], fits: str
) -> None:
    for path, method, ints in int_routes:
        for name in ints:
            url = fill(path, site, {name: fits})
            answer = httpx.request(method, site.server.url + url, headers=site.admin, timeout=30)
            assert answer.status_code < 500, f"{method} {url}: {answer.status_code}"


# --- session-list filters ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ODD_TEXT, ids=repr)
@pytest.mark.parametrize("name", TEXT_FILTERS)
def test_odd_characters_in_a_text_filter_are_data_that_matches_nothing(site: Site, name: str, value: str) -> None:
    assert listed_api(site.get(f"/api/v1/projects/{site.project}/sessions", {name: value})) == []
    assert listed_page(site.get(f"/projects/{site.project}/sessions", {name: value})) == []


def test_odd_characters_find_exactly_the_session_that_holds_them(site: Site) -> None:
    """The control: filters do apply, and a quote or backslash is compared as itself."""
    assert listed_api(site.get(f"/api/v1/projects/{site.project}/sessions", {"user": ODD_USER})) == [
        site.odd_session_id
    ]
    assert listed_page(site.get(f"/projects/{site.project}/sessions", {"user": ODD_USER})) == [site.odd_session_id]
    assert listed_api(site.get(f"/api/v1/projects/{site.project}/sessions", {"user": "plain-user"})) == [
        site.session_id
    ]
    everything = listed_api(site.get(f"/api/v1/projects/{site.project}/sessions"))
    assert sorted(everything) == sorted([site.session_id, site.odd_session_id])


@pytest.mark.parametrize("value", ["'", "\\", "{}", "\x00", "D'", "D1", "Germany"], ids=repr)
def test_odd_country_is_400(site: Site, value: str) -> None:
    assert_bad_parameter(site, "country", value)


@pytest.mark.parametrize("value", ["'", "\\", "{}", "\x00", "toaster"], ids=repr)
def test_odd_device_is_400(site: Site, value: str) -> None:
    assert_bad_parameter(site, "device", value)


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "2026-13-45", "1969-12-31", "2200-01-01",
                                   "2026-02-30", "'", "\\", "{}", "\x00", "yesterday"], ids=repr)
@pytest.mark.parametrize("name", ["from", "to"])
def test_a_date_out_of_range_or_malformed_is_400(site: Site, name: str, value: str) -> None:
    assert_bad_parameter(site, name, value)


@pytest.mark.parametrize("value", ["1970-01-01", "2199-12-31"])
def test_the_last_dates_in_range_are_accepted(site: Site, value: str) -> None:
    for name in ("from", "to"):
        assert site.get(f"/api/v1/projects/{site.project}/sessions", {name: value}).status_code == 200


@pytest.mark.parametrize("value", ["-1", "1e400", "nan", "inf", "-inf", "10000000", "0x10", "1,5", "\x00", "'"],
                         ids=repr)
@pytest.mark.parametrize("name", ["min_duration", "max_duration"])
def test_a_duration_out_of_range_or_malformed_is_400(site: Site, name: str, value: str) -> None:
    assert_bad_parameter(site, name, value)


@pytest.mark.parametrize("value", ["maybe", "'", "\\", "{}", "\x00"], ids=repr)
def test_a_has_errors_that_is_not_a_checkbox_value_is_400(site: Site, value: str) -> None:
    assert_bad_parameter(site, "has_errors", value)


@pytest.mark.parametrize("value", ["0", "-1", "1001", "99999999999999999999999", "1e3", "abc", "\u0663", "1_0",
                                   "'", "\x00"], ids=repr)
def test_a_limit_out_of_range_or_malformed_is_400(site: Site, value: str) -> None:
    assert_bad_parameter(site, "limit", value)


def test_limits_in_range_page_through_the_sessions(site: Site) -> None:
    first = site.get(f"/api/v1/projects/{site.project}/sessions", {"limit": "1"}).json()
    assert len(first["sessions"]) == 1 and first["next_cursor"]
    rest = site.get(f"/api/v1/projects/{site.project}/sessions", {"limit": "1000", "cursor": first["next_cursor"]})
    assert len(listed_api(rest)) == 1


@pytest.mark.parametrize(
    "value",
    [
        "%%%",
        "!!!",
        "\x00",
        "'",
        "{}",
        "A" * 5000,
        b64("99999999999999999999999:abcdefgh123"),
        b64("-99999999999999999999999:abcdefgh123"),
        b64("1:short"),
        b64("x:abcdefgh123"),
        b64("1_0:abcdefgh123"),
        b64("\uff11:abcdefgh123"),  # a fullwidth digit: int() takes it, a cursor never holds it
        b64("1:abcdefgh'12"),
        b64(b"\xff\xfe:abcdefgh123"),
    ],
    ids=lambda v: repr(v[:40]),
)
def test_a_malformed_cursor_is_400(site: Site, value: str) -> None:
    assert_bad_parameter(site, "cursor", value)


# --- JSON bodies and forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"[" * 60_000, 400, "nested too deeply"),
        (b'{"a":' * 12_000, 400, "nested too deeply"),
        (b"[" * 70_000, 413, "at most"),
        (b'{"name": "a\\ud800"}', 400, "not JSON"),  # a lone surrogate cannot be stored
        (b"\xff\xfe", 400, "not JSON"),
        (b"null", 400, "JSON object"),
        (b'{"name": {"x": 1}}', 400, "name must be a string"),
        (b'{"name": 5}', 400, "name must be a string"),
        (b'{"name": "x", "ip_anonymisation": ["hash"]}', 400, "ip_anonymisation must be a string"),
        (b'{"name": "x", "allowed_origins": "javascript:alert(1)"}', 400, "not an origin"),
        (b'{"name": "x", "allowed_origins": [1]}', 400, "allowed_origins"),
        (b'{"name": "x", "owner": "me"}', 400, "unknown field"),
    ],
    ids=lambda v: repr(v[:24]) if isinstance(v, bytes) else str(v),
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_bad_project_body_is_a_4xx_saying_why(
    site: Site, method: str, body: bytes, status: int, message: str
) -> None:
    path = "/api/v1/projects" if method == "POST" else f"/api/v1/projects/{site.project}"
    headers = {**site.admin, "Content-Type": "application/json"}
    answer = httpx.request(method, site.server.url + path, content=body, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"[" * 60_000, "nested too deeply"), (b'{"name": 1, "scope": "read"}', "name must be a string"),
     (b'{"name": "t", "scope": ["read"]}', "scope must be a string"), (b'{"name": "t", "scope": "\\u0000"}', "scope")],
    ids=["deep", "name-type", "scope-type", "scope-nul"],
)
def test_a_bad_token_body_is_a_400_saying_why(site: Site, body: bytes, message: str) -> None:
    headers = {"Authorization": f"Bearer {site.user_token}", "Content-Type": "application/json"}
    answer = httpx.post(site.server.url + "/api/v1/tokens", content=body, headers=headers, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        ("/projects", {"name": ""}, "A project needs a name"),
        ("/projects", {"name": "x" * 201}, "A project needs a name"),
        ("/account/tokens", {"name": "t", "scope": "admin"}, "Scope must be one of"),
        ("/account/tokens", {"name": "", "scope": "read"}, "The token needs a name"),
        ("/account/tokens", {"name": "t\x00'{}", "scope": "\x00"}, "Scope must be one of"),
        ("/projects/{project}/settings", {"name": "", "allowed_origins": ""}, "A project needs a name"),
        ("/projects/{project}/settings", {"name": "ok", "allowed_origins": "javascript:x"}, "Not an origin"),
        ("/projects/{project}/members", {"email": "nobody@example.test\x00", "role": "member"}, "No user has that"),
        ("/projects/{project}/members", {"email": "viewer@example.test", "role": "god"}, "Role must be one of"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_rejected_form_value_is_a_400_page_saying_why(
    site: Site, path: str, form: dict[str, str], message: str
) -> None:
    url = site.server.url + path.format(project=site.project)
    answer = httpx.post(url, data=form, headers={"Authorization": f"Bearer {site.user_token}"}, timeout=30)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html"), answer.text[:300]
    assert message in html.unescape(answer.text), answer.text
    name = form.get("name")
    if name and path in ("/projects", "/account/tokens") and "\x00" not in name:
        assert f'value="{html.escape(name)}"' in answer.text, "the form keeps what was typed"


# --- caching of private data --------------------------------------------------------------------------


def test_private_answers_are_never_cached(site: Site) -> None:
    base = f"/api/v1/projects/{site.project}/sessions"
    for path in (base, f"{base}/{site.session_id}", f"{base}/{site.session_id}/recording",
                 f"{base}/{site.session_id}/recording/0", f"{base}/nosuchsession", "/api/v1/projects",
                 f"/api/v1/projects/{site.project}", f"/projects/{site.project}/sessions",
                 f"/projects/{site.project}/sessions/{site.session_id}"):
        answer = site.get(path)
        assert answer.headers.get("cache-control") == "no-store", f"{path}: {answer.headers.get('cache-control')}"
    assert site.get(f"{base}/{site.session_id}/recording/0").status_code == 200


def test_signing_out_clears_the_browser_cache(site: Site) -> None:
    with httpx.Client(base_url=site.server.url, timeout=30) as browser:
        form = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        signed_in = browser.post("/login", data={"email": site.email, "password": PASSWORD,
                                                 "csrf_token": token.group(1)})
        assert signed_in.status_code == 303
        page = browser.get("/projects")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        out = browser.post("/logout", data={"csrf_token": csrf.group(1)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert out.headers["clear-site-data"] == '"cache"'
        assert "hm_session" not in browser.cookies, "the session cookie is cleared too"
        assert browser.get("/projects").status_code == 303, "and the session is over"
