"""The demo dating site (hitmetrix/web/demo_site.py) over real HTTP, against a real server process with --demo:
sign-up, sign-in that works and sign-in that fails (200 with an error text), search, profiles, messages
behind sign-in, the export of one's own data, its own cookie, and bad input answered 4xx, never 5xx."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hitmetrix.web.demo.members import SEEDED_MEMBERS, seeded_members
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.integration

SEEDED = seeded_members()
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("demo_site") / "data", demo=True).start()
    yield s
    s.stop()


def web(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)


def sign_in(c: httpx.Client, email: str, password: str) -> httpx.Response:
    return c.post("/demo/signin", data={"email": email, "password": password, "next": "/demo/messages"})


def new_member(c: httpx.Client, **fields: str) -> tuple[str, int]:
    email = f"newbie-{secrets.token_hex(4)}@example.net"
    answer = c.post("/demo/signup", data={"email": email, "password": "correct horse 1", "name": "Newbie Tester",
                                          "age": "33", "city": "Oslo", "bio": "Likes tests.", **fields})
    assert answer.status_code == 303, answer.text
    return email, int(answer.headers["location"].rsplit("/", 1)[1])


def test_pages_load_the_tracker_with_the_demo_key_and_no_dashboard_headers(server: ServerProcess) -> None:
    key = next(p for p in server.api("/api/v1/projects").json() if p["name"] == "demo")["public_key"]
    with web(server) as c:
        for path in ("/demo/", "/demo/members", "/demo/search?q=jazz", "/demo/members/1", "/demo/signin",
                     "/demo/signup", "/demo/reset", "/demo/about.html"):
            page = c.get(path)
            assert page.status_code == 200, path
            assert f'<script async src="/hm.js" data-key="{key}">' in page.text, path
            assert "content-security-policy" not in page.headers, path
        assert c.get("/demo").status_code == 307
        assert c.get("/demo/static/demo.js").status_code == 200


def test_seeded_members_are_deterministic_and_walkable_by_sequential_id(server: ServerProcess) -> None:
    assert len(SEEDED) == SEEDED_MEMBERS and seeded_members() == SEEDED  # the same people on every install
    with web(server) as c:
        for member in (SEEDED[0], SEEDED[41], SEEDED[-1]):
            page = c.get(f"/demo/members/{member.id}")
            assert page.status_code == 200 and member.name in page.text and member.city in page.text
            assert member.email not in page.text and member.phone not in page.text  # private data stays private
        missing = c.get(f"/demo/members/{SEEDED_MEMBERS + 10_000}")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "no member" in missing.text
        listing = c.get("/demo/members?page=2")
        assert f'href="/demo/members/{SEEDED[24].id}"' in listing.text and SEEDED[0].name not in listing.text


def test_search_finds_by_name_city_and_interest_and_treats_wildcards_as_text(server: ServerProcess) -> None:
    target = SEEDED[7]
    with web(server) as c:
        found = c.get("/demo/search", params={"q": target.name})
        assert found.status_code == 200 and f'href="/demo/members/{target.id}"' in found.text
        by_city = c.get("/demo/search", params={"q": target.city})
        assert f'href="/demo/members/{target.id}"' in by_city.text or 'id="next"' in by_city.text
        for literal in ("%", "_", "' OR 1=1 --", "\\"):
            answer = c.get("/demo/search", params={"q": literal})
            assert answer.status_code == 200 and 'class="card"' not in answer.text, literal


def test_sign_up_signs_in_with_a_cookie_of_its_own(server: ServerProcess) -> None:
    with web(server) as c:
        email, member_id = new_member(c)
        cookie = c.cookies.jar
        demo = [k for k in cookie if k.name == "demo_session"]
        assert demo and demo[0].path == "/demo" and demo[0].has_nonstandard_attr("HttpOnly")
        assert "hm_session" not in c.cookies
        profile = c.get(f"/demo/members/{member_id}")
        assert "Newbie Tester" in profile.text and 'id="nav-signout"' in profile.text
        again = c.post("/demo/signup", data={"email": email, "password": "another pw 2", "name": "Twin", "age": "30"})
        assert again.status_code == 409 and "already has an account" in again.text
    stored = sqlite3.connect(server.data_dir / "demo" / "site.db").execute(
        "SELECT password_hash FROM members WHERE email = ?", (email,)).fetchone()[0]
    assert stored.startswith("scrypt$") and "correct horse" not in stored


def test_sign_in_ok_and_failed_the_failure_answers_200_with_an_error_text(server: ServerProcess) -> None:
    member = SEEDED[3]
    with web(server) as c:
        bad = sign_in(c, member.email, member.password + "x")
        assert bad.status_code == 200 and "Wrong email or password" in bad.text
        assert "demo_session" not in c.cookies
        unknown = sign_in(c, "nobody-here@example.com", "whatever1")
        assert unknown.status_code == 200 and "Wrong email or password" in unknown.text
        ok = sign_in(c, member.email.upper(), member.password)
        assert ok.status_code == 303 and ok.headers["location"] == "/demo/messages"
        assert c.get("/demo/messages").status_code == 200
        assert c.post("/demo/signout").status_code == 303
        assert c.get("/demo/messages").status_code == 303, "signed out"
        evil = c.post("/demo/signin?next=//evil.example/", data={"email": member.email, "password": member.password,
                                                                   "next": "https://evil.example/"})
        assert evil.headers["location"] == "/demo/messages", "no open redirect"


def test_messages_and_export_need_sign_in(server: ServerProcess) -> None:
    with web(server) as c:
        inbox = c.get("/demo/messages")
        assert inbox.status_code == 303 and inbox.headers["location"] == "/demo/signin?next=%2Fdemo%2Fmessages"
        assert c.post("/demo/messages", data={"to": "1", "body": "hi"}).status_code == 401
        assert c.get("/demo/account/export").status_code == 303


def test_a_message_reaches_its_recipient_and_each_export_holds_only_its_own_data(server: ServerProcess) -> None:
    sender, recipient, bystander = SEEDED[10], SEEDED[11], SEEDED[12]
    body = f"Hello from a test {secrets.token_hex(3)}"
    with web(server) as a, web(server) as b:
        assert sign_in(a, sender.email, sender.password).status_code == 303
        sent = a.post("/demo/messages", data={"to": str(recipient.id), "body": body})
        assert sent.status_code == 303 and sent.headers["location"] == f"/demo/members/{recipient.id}?sent=1"
        assert sign_in(b, recipient.email, recipient.password).status_code == 303
        assert body in b.get("/demo/messages").text
        for client, who in ((a, sender), (b, recipient)):
            # A parameter naming someone else changes nothing: the export is the signed-in member's.
            answer = client.get("/demo/account/export", params={"member": str(bystander.id), "id": str(bystander.id)})
            assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
            data = answer.json()
            assert data["profile"]["email"] == who.email and data["profile"]["phone"] == who.phone
            assert "password_hash" not in data["profile"] and who.password not in answer.text
            assert bystander.email not in answer.text and bystander.phone not in answer.text
            assert body in json.dumps(data["messages_sent"] + data["messages_received"])


def test_password_reset_answers_the_same_for_any_address(server: ServerProcess) -> None:
    with web(server) as c:
        known = c.post("/demo/reset", data={"email": SEEDED[5].email})
        unknown = c.post("/demo/reset", data={"email": "nobody-here@example.com"})
        assert known.status_code == unknown.status_code == 200
        assert "If an account exists" in known.text and "If an account exists" in unknown.text


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status", "message"),
    [
        ("POST", "/demo/signin", b"email=a%40b.co&password=" + b"x" * 20_000, FORM, 413, "larger than"),
        ("POST", "/demo/signin", b'{"email": "a@b.co"}', {"content-type": "application/json"}, 415, "urlencoded"),
        ("POST", "/demo/signin", b"email=%ff%fe&password=x", FORM, 400, "UTF-8"),
        ("POST", "/demo/signin", b"email=a%40b.co&password=x%00y", FORM, 400, "NUL"),
        ("POST", "/demo/signin", b"email=not-an-email&password=x", FORM, 400, "Email"),
        ("POST", "/demo/signin", b"email=a%40b.co", FORM, 400, "Password is required"),
        ("POST", "/demo/signup", b"email=a%40b.co&password=short&name=A&age=30", FORM, 400, "8 to 128"),
        ("POST", "/demo/signup", b"email=a%40b.co&password=longenough&name=A&age=17", FORM, 400, "Age"),
        ("POST", "/demo/signup", b"email=a%40b.co&password=longenough&name=A&age=1e9", FORM, 400, "Age"),
        ("POST", "/demo/signup", b"email=a%40b.co&password=longenough&age=40", FORM, 400, "Name is required"),
        ("POST", "/demo/reset", b"email=", FORM, 400, "Email is required"),
        ("GET", "/demo/search?q=" + "a" * 101, b"", {}, 400, "at most 100"),
        ("GET", "/demo/search?q=%00", b"", {}, 400, "NUL"),
        ("GET", "/demo/members?page=abc", b"", {}, 400, "page must be"),
        ("GET", "/demo/members?page=99999999999999999999", b"", {}, 400, "page must be"),
        ("GET", "/demo/members/99999999999999999999999", b"", {}, 404, "nothing at this address"),
        ("DELETE", "/demo/signin", b"", {}, 405, "method"),
        ("GET", "/demo/nowhere", b"", {}, 404, "nothing at this address"),
    ],
)
def test_bad_input_is_a_4xx_that_says_why(
    server: ServerProcess, method: str, path: str, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    with web(server) as c:
        answer = c.request(method, path, content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert message in answer.text


def test_bad_message_input_while_signed_in(server: ServerProcess) -> None:
    member = SEEDED[20]
    with web(server) as c:
        assert sign_in(c, member.email, member.password).status_code == 303
        for data, status in (({"to": "999999999", "body": "hi"}, 404), ({"to": "x", "body": "hi"}, 400),
                             ({"to": "2", "body": ""}, 400), ({"to": "2", "body": "b" * 2001}, 400)):
            assert c.post("/demo/messages", data=data).status_code == status, data


def test_sign_in_outcomes_reach_hitmetrix_through_the_middleware(server: ServerProcess) -> None:
    """The failed sign-in (a 200 page) is known as failed only through track_auth: it is stored as an auth event."""
    sdk = pytest.importorskip("hitmetrix.sdk")
    if not hasattr(sdk, "HitmetrixASGI"):
        pytest.skip("hitmetrix.sdk has no middleware yet")
    project = next(p for p in server.api("/api/v1/projects").json() if p["name"] == "demo")
    session_id = "demoTest" + secrets.token_hex(8)
    member = SEEDED[30]
    with web(server) as c:
        c.cookies.set("hm_sid", session_id, path="/")
        assert sign_in(c, member.email, "not-the-password").status_code == 200
        assert sign_in(c, member.email, member.password).status_code == 303

    def session_events() -> list[dict] | None:
        r = server.api(f"/api/v1/projects/{project['id']}/sessions/{session_id}")
        events = r.json()["events"] if r.status_code == 200 else []
        kinds = [e["type"] for e in events]
        return events if kinds.count("auth") >= 2 and kinds.count("request") >= 2 else None

    events = wait_for(session_events, 30, 0.2, what="the sign-in outcomes in the demo project")
    outcomes = [(e["name"], json.loads(e["props"])["ok"]) for e in events if e["type"] == "auth"]
    assert outcomes[:2] == [("signin", False), ("signin", True)], outcomes
    routes = [(e["name"], json.loads(e["props"])["status"]) for e in events if e["type"] == "request"]
    assert routes[:2] == [("/demo/signin", 200), ("/demo/signin", 303)], routes
    assert member.email not in json.dumps(events), "usernames are stored hashed"


def test_the_demo_database_lives_in_the_data_directory(server: ServerProcess) -> None:
    path: Path = server.data_dir / "demo" / "site.db"
    assert path.exists()
    count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM members WHERE id <= ?", (SEEDED_MEMBERS,)).fetchone()
    assert count[0] == SEEDED_MEMBERS
