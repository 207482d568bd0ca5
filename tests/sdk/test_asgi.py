"""HitmetrixASGI around a real Starlette app, in process: the request events it records, the decisions it enforces."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from hitmetrix.sdk import ROUTE_KEY, Client, HitmetrixASGI, set_user
from hitmetrix.sdk.transport import Answer
from tests.sdk.memory import MemoryTransport
from tests.support import wait_for

SID = "sess_0123456789"


async def profile(request: Request) -> Response:
    return PlainTextResponse("profile " + request.path_params["member_id"])


async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"]})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 1000

    return StreamingResponse(chunks())


async def crash(request: Request) -> Response:
    raise RuntimeError("the host's own bug")


async def signin(request: Request) -> Response:
    form = json.loads(await request.body())
    ok = form["password"] == "right"
    client: Client = request.app.state.hitmetrix
    client.track_auth("signin", form["username"], ok, request=request, user_id="u-9" if ok else None)
    if ok:
        set_user(request, "u-9")
    return PlainTextResponse("welcome" if ok else "wrong password")  # 200 either way, as many sites do


class FakeAuth(BaseHTTPMiddleware):
    """Stands for an authentication middleware inside ours: it marks the user in the scope."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        if request.headers.get("x-user"):
            request.scope["hitmetrix.user_id"] = request.headers["x-user"]
        return await call_next(request)


def host_app(client: Client, **options: Any) -> Any:
    app = Starlette(
        routes=[
            Route("/profiles/{member_id}", profile),
            Route("/stream", stream),
            Route("/crash", crash),
            Route("/signin", signin, methods=["POST"]),
            Mount("/api", routes=[Route("/items/{item_id}", item)]),
        ],
        middleware=[Middleware(FakeAuth)],
    )
    app.state.hitmetrix = client
    return HitmetrixASGI(app, client, **options)


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def client(transport: MemoryTransport) -> Iterator[Client]:
    made = Client(
        "http://127.0.0.1:9",
        "hm_sk_x",
        trusted_proxies="127.0.0.1",
        flush_interval_s=60,
        transport_factory=transport.factory,
    )
    yield made
    made.close(1)


class http:  # noqa: N801 - reads like the function it stands for
    """Requests to an ASGI app in process, from peer 127.0.0.1 (a trusted proxy here)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://site.example") as web:
                return await web.request(method, path, **options)

        return asyncio.run(go())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


def sent(client: Client, transport: MemoryTransport, count: int) -> list[dict[str, Any]]:
    assert client.flush(5)
    events = transport.events()
    assert len(events) == count, events
    return events


def test_one_event_per_request_with_every_field(client: Client, transport: MemoryTransport) -> None:
    before_ms = int(time.time() * 1000)
    answer = http(host_app(client)).get(
        "/profiles/17?tab=photos",
        headers={
            "User-Agent": "Mozilla/5.0 Test",
            "Cookie": f"theme=dark; hm_sid={SID}",
            "X-Forwarded-For": "1.2.3.4, 203.0.113.7",
            "Referer": "https://site.example/search?q=anna",
            "X-User": "u-17",
        },
    )
    assert answer.status_code == 200 and answer.text == "profile 17"
    [event] = sent(client, transport, 1)
    assert event["type"] == "request"
    assert before_ms <= event["ts"] <= int(time.time() * 1000)
    assert 0 < event["duration_ms"] < 5000
    assert {k: event[k] for k in ("ip", "user_agent", "session_id", "user_id", "method", "path", "query")} == {
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 Test",
        "session_id": SID,
        "user_id": "u-17",
        "method": "GET",
        "path": "/profiles/17",
        "query": "tab=photos",
    }
    assert (event["route"], event["status"], event["bytes"]) == ("/profiles/{member_id}", 200, len("profile 17"))
    assert event["referrer"] == "https://site.example/search?q=anna"
    assert client.stats()["errors"] == 0


def test_routes_in_a_mount_404s_streams_and_crashes(client: Client, transport: MemoryTransport) -> None:
    web = http(host_app(client))
    assert web.get("/api/items/5").status_code == 200
    assert web.get("/nowhere").status_code == 404
    assert web.get("/api/nowhere").status_code == 404
    assert web.get("/stream").content == b"x" * 3000
    assert web.get("/crash").status_code == 500  # the app's exception passed through to the server
    events = sent(client, transport, 5)
    assert [(e["path"], e["route"], e["status"]) for e in events] == [
        ("/api/items/5", "/api/items/{item_id}", 200),
        ("/nowhere", "", 404),
        ("/api/nowhere", "", 404),
        ("/stream", "/stream", 200),
        ("/crash", "/crash", 500),
    ]
    assert events[3]["bytes"] == 3000
    assert client.stats()["errors"] == 0


def test_track_auth_from_an_endpoint_and_the_user_it_sets(client: Client, transport: MemoryTransport) -> None:
    web = http(host_app(client))
    headers = {"Cookie": f"hm_sid={SID}", "X-Forwarded-For": "203.0.113.7", "User-Agent": "bot/1"}
    assert web.post("/signin", content=b'{"username":"anna@example.com","password":"wrong"}', headers=headers).text
    assert web.post("/signin", content=b'{"username":"anna@example.com","password":"right"}', headers=headers).text
    events = sent(client, transport, 4)
    auths = [e for e in events if e["type"] == "auth"]
    requests = [e for e in events if e["type"] == "request"]
    assert [(a["kind"], a["ok"], a["username"], a["user_id"]) for a in auths] == [
        ("signin", False, "anna@example.com", ""),
        ("signin", True, "anna@example.com", "u-9"),
    ]
    assert all(a["ip"] == "203.0.113.7" and a["session_id"] == SID and a["user_agent"] == "bot/1" for a in auths)
    assert [r["user_id"] for r in requests] == ["", "u-9"]  # set_user during the request reached the event
    assert all("password" not in json.dumps(e) for e in events)


def test_custom_user_of_and_route_of(client: Client, transport: MemoryTransport) -> None:
    app = host_app(client, user_of=lambda scope: 42, route_of=lambda scope: "custom")
    http(app).get("/profiles/1")
    [event] = sent(client, transport, 1)
    assert (event["user_id"], event["route"]) == ("42", "custom")


def test_a_failing_user_of_never_fails_the_request(client: Client, transport: MemoryTransport) -> None:
    def broken(scope: Any) -> str:
        raise KeyError("session")

    answer = http(host_app(client, user_of=broken)).get("/profiles/1")
    assert answer.status_code == 200
    [event] = sent(client, transport, 1)
    assert event["user_id"] == ""
    stats = client.stats()
    assert stats["errors"] == 1 and "KeyError" in stats["last_error"]


def enforcing(decisions: list[dict[str, Any]]) -> tuple[Client, MemoryTransport]:
    def answer(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        if method == "GET":
            return Answer(200, {}, json.dumps({"decisions": decisions}).encode())
        return Answer(200, {}, b"{}")

    transport = MemoryTransport(answer)
    client = Client(
        "http://127.0.0.1:9",
        "hm_sk_x",
        trusted_proxies="127.0.0.1",
        enforce=True,
        flush_interval_s=60,
        transport_factory=transport.factory,
    )
    wait_for(lambda: client.stats()["decision_polls"] >= 1, 5, what="the first decisions poll")
    return client, transport


def decision(scope: str, value: str, action: str, **extra: Any) -> dict[str, Any]:
    expires_ms = int(time.time() * 1000) + 120_000
    return {
        "id": f"{scope}:{value}",
        "scope": scope,
        "value": value,
        "action": action,
        "expires_ms": expires_ms,
        **extra,
    }


def test_enforcement_blocks_and_challenges_before_the_app() -> None:
    client, transport = enforcing(
        [
            decision("ip", "k3y", "block", match="203.0.113.7"),
            decision("net", "198.51.100.0/24", "challenge"),
            decision("user", "u-666", "block"),
            decision("session", SID, "block"),
        ]
    )
    try:
        web = http(host_app(client))
        blocked = web.get("/profiles/1", headers={"X-Forwarded-For": "203.0.113.7"})
        assert (blocked.status_code, blocked.text) == (403, "Forbidden\n")
        challenged = web.get("/profiles/1", headers={"X-Forwarded-For": "198.51.100.200"})
        assert challenged.status_code == 429
        assert 100 <= int(challenged.headers["retry-after"]) <= 120
        assert web.get("/profiles/1", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
        assert web.get("/profiles/1", headers={"Cookie": f"hm_sid={SID}"}).status_code == 403
        assert web.get("/profiles/1", headers={"X-User": "u-666"}).status_code == 200  # user known only inside
        by_user = host_app(client, user_of=lambda scope: "u-666")  # a user_of that reads the raw request
        assert http(by_user).get("/profiles/1").status_code == 403
        stats = client.stats()
        assert (stats["blocked"], stats["challenged"], stats["decisions"]) == (3, 1, 4)
        events = sent(client, transport, 6)
        assert [e["status"] for e in events] == [403, 429, 200, 403, 200, 403]
        assert events[0]["route"] == ""  # the app never ran
    finally:
        client.close(1)


def test_without_enforce_decisions_are_not_even_fetched(client: Client, transport: MemoryTransport) -> None:
    assert http(host_app(client)).get("/profiles/1").status_code == 200
    client.flush(5)
    assert [method for method, *_ in transport.requests] == ["POST"]


def test_an_app_may_name_its_route_in_the_scope(client: Client, transport: MemoryTransport) -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = "/members/:id"  # e.g. a Django middleware copying resolver_match.route
        await PlainTextResponse("ok")(scope, receive, send)

    assert http(HitmetrixASGI(plain, client)).get("/members/5").status_code == 200
    [event] = sent(client, transport, 1)
    assert event["route"] == "/members/:id"


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
def test_other_scopes_pass_straight_through(client: Client, transport: MemoryTransport, scope_type: str) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict:
        return {}

    async def ignore(message: Any) -> None:
        pass

    asyncio.run(HitmetrixASGI(inner, client)({"type": scope_type}, nothing, ignore))
    assert seen == [scope_type]
    assert client.flush(5) and transport.events() == []


class OnlyDisplayName(BaseUser):
    """A user class that, like many, implements display_name but not identity."""

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return "member-3"


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.headers.get("x-login")
        if not name:
            return None
        return AuthCredentials(["authenticated"]), (SimpleUser(name) if name != "odd" else OnlyDisplayName())


def test_the_default_user_of_reads_starlette_authentication(client: Client, transport: MemoryTransport) -> None:
    app = Starlette(
        routes=[Route("/profiles/{member_id}", profile)],
        middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())],
    )
    web = http(HitmetrixASGI(app, client))
    for login in ("anna", "odd", ""):
        assert web.get("/profiles/1", headers={"X-Login": login} if login else {}).status_code == 200
    assert [e["user_id"] for e in sent(client, transport, 3)] == ["anna", "member-3", ""]
    assert client.stats()["errors"] == 0
