"""``HitmetrixASGI``: one ``request`` event per HTTP request of any ASGI app, and decisions enforced before it.

The event is recorded when the app returns (or raises: status 500 unless a response had started), so the route
template that Starlette / FastAPI put in ``scope["route"]`` (or an app in ``scope["hitmetrix.route"]``) and the user
an inner authentication middleware put in the scope are known. Nothing here can fail the request: the SDK's own
work is wrapped and its errors counted; exceptions of the app itself pass through untouched. WebSocket and lifespan
scopes pass straight through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hitmetrix.sdk.client import Client
from hitmetrix.sdk.context import NO_FACTS, ROUTE_KEY, asgi_facts, default_asgi_user
from hitmetrix.sdk.decisions import Decision
from hitmetrix.sdk.events import RawRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def starlette_route(scope: Scope, root_path_before: str) -> str:
    """The matched route's template, with the prefix of the Mount it sits in; "" when nothing matched."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or hasattr(route, "routes"):
        return ""  # no route, or only a Mount matched (nothing inside it did)
    root_path = scope.get("root_path", "")
    if isinstance(root_path, str) and len(root_path) > len(root_path_before):
        template = root_path[len(root_path_before) :] + template
    return template


class HitmetrixASGI:
    def __init__(
        self,
        app: ASGIApp,
        client: Client,
        user_of: Callable[[Scope], str | None] | None = None,
        route_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.user_of = user_of or default_asgi_user
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ts_ms = time.time_ns() // 1_000_000
        root_path_before = scope.get("root_path", "")
        client = self.client
        try:
            facts = asgi_facts(scope)
            decision = client.decision_for(facts, lambda: self._user(scope))
        except Exception as exc:  # noqa: BLE001
            client.count_error("reading the request", exc)
            facts, decision = NO_FACTS, None
        if decision is not None:
            sent = await self._refuse(send, decision)
            self._record(scope, facts, ts_ms, started, root_path_before, decision_status(decision), sent)
            return

        status = 0
        response_bytes = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, response_bytes
            kind = message.get("type")
            if kind == "http.response.body":
                response_bytes += len(message.get("body") or b"")
            elif kind == "http.response.start":
                status = message.get("status", 0)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, facts, ts_ms, started, root_path_before, status or 500, response_bytes)

    def _user(self, scope: Scope) -> str:
        try:
            return str(self.user_of(scope) or "")
        except Exception as exc:  # noqa: BLE001
            self.client.count_error("user_of", exc)
            return ""

    def _record(
        self, scope: Scope, facts: Any, ts_ms: int, started: float, root_path_before: str, status: int, size: int
    ) -> None:
        try:
            duration_ms = (time.perf_counter() - started) * 1000.0
            if self.route_of is not None:
                route = self.route_of(scope)
            else:
                route = scope.get(ROUTE_KEY) or starlette_route(scope, root_path_before)
            self.client.record(
                RawRequest(
                    ts_ms,
                    facts.peer,
                    facts.forwarded_for,
                    facts.user_agent,
                    facts.cookie,
                    self._user(scope),
                    scope.get("method", ""),
                    scope.get("path", ""),
                    (scope.get("query_string") or b"").decode("latin-1"),
                    route or "",
                    status,
                    duration_ms,
                    size,
                    facts.referrer,
                )
            )
        except Exception as exc:  # noqa: BLE001
            self.client.count_error("recording a request", exc)

    async def _refuse(self, send: Send, decision: Decision) -> int:
        """Answer 403 (block) or 429 with Retry-After (challenge) instead of the app; returns the body size."""
        status = decision_status(decision)
        body = b"Forbidden\n" if status == 403 else b"Too Many Requests\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        if status == 429:
            retry_after_s = decision.retry_after_s(time.time_ns() // 1_000_000)
            headers.append((b"retry-after", str(retry_after_s).encode()))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception as exc:  # noqa: BLE001 - the client went away; nothing to answer
            self.client.count_error("answering a refused request", exc)
        return len(body)


def decision_status(decision: Decision) -> int:
    return 403 if decision.action == "block" else 429
