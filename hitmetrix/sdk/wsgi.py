"""``HitmetrixWSGI``: one ``request`` event per request of any WSGI app (Flask, Django, …), decisions enforced first.

The event is recorded when the response is complete: at once when the app returns a list (the common case for
small responses), else when the server closes the iterable. WSGI has no standard place for the route template, so
pass ``route_of(environ)`` (Flask: ``request.url_rule.rule``, Django: ``resolver_match.route``, both of which can be
copied into the environ by the app; see docs/sdk.md). Nothing here can fail the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hitmetrix.sdk.client import Client
from hitmetrix.sdk.context import NO_FACTS, ROUTE_KEY, Facts, default_wsgi_user, wsgi_facts
from hitmetrix.sdk.decisions import Decision
from hitmetrix.sdk.events import RawRequest

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def default_wsgi_route(environ: Environ) -> str:
    return str(environ.get(ROUTE_KEY) or "")


class _Exchange:
    """One request in flight: what start_response and the body told us."""

    __slots__ = ("middleware", "environ", "facts", "ts_ms", "started", "status", "size", "recorded")

    def __init__(self, middleware: HitmetrixWSGI, environ: Environ, facts: Facts, ts_ms: int, started: float) -> None:
        self.middleware = middleware
        self.environ = environ
        self.facts = facts
        self.ts_ms = ts_ms
        self.started = started
        self.status = 0
        self.size = 0
        self.recorded = False

    def record(self) -> None:
        if not self.recorded:
            self.recorded = True
            self.middleware._record(self)


class _ObservedBody:
    """The app's response iterable, counting bytes, recording the request when the server closes it."""

    __slots__ = ("inner", "exchange")

    def __init__(self, inner: Iterable[bytes], exchange: _Exchange) -> None:
        self.inner = inner
        self.exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        for chunk in self.inner:
            exchange.size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.exchange.record()


class HitmetrixWSGI:
    def __init__(
        self,
        app: WSGIApp,
        client: Client,
        user_of: Callable[[Environ], str | None] | None = None,
        route_of: Callable[[Environ], str | None] | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.user_of = user_of or default_wsgi_user
        self.route_of = route_of or default_wsgi_route

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        ts_ms = time.time_ns() // 1_000_000
        client = self.client
        try:
            facts = wsgi_facts(environ)
            decision = client.decision_for(facts, lambda: self._user(environ))
        except Exception as exc:  # noqa: BLE001
            client.count_error("reading the request", exc)
            facts, decision = NO_FACTS, None
        exchange = _Exchange(self, environ, facts, ts_ms, started)
        if decision is not None:
            return self._refuse(start_response, decision, exchange)

        def observed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                exchange.status = int(status[:3])
            except ValueError:
                exchange.status = 500
            write = start_response(status, headers, exc_info)

            def observed_write(data: bytes) -> Any:
                exchange.size += len(data)
                return write(data)

            return observed_write

        try:
            body = self.app(environ, observed_start_response)
        except BaseException:
            if not exchange.status:
                exchange.status = 500
            exchange.record()
            raise
        if isinstance(body, list | tuple):
            try:
                exchange.size += sum(len(chunk) for chunk in body)
            except Exception as exc:  # noqa: BLE001 - not bytes: the server will complain, not us
                client.count_error("measuring the response", exc)
            exchange.record()
            return body
        return _ObservedBody(body, exchange)

    def _user(self, environ: Environ) -> str:
        try:
            return str(self.user_of(environ) or "")
        except Exception as exc:  # noqa: BLE001
            self.client.count_error("user_of", exc)
            return ""

    def _record(self, exchange: _Exchange) -> None:
        try:
            environ = exchange.environ
            facts = exchange.facts
            path = (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "")
            # PEP 3333 strings are bytes decoded as latin-1; the path's real characters are UTF-8.
            path = path.encode("latin-1", "replace").decode("utf-8", "replace")
            self.client.record(
                RawRequest(
                    exchange.ts_ms,
                    facts.peer,
                    facts.forwarded_for,
                    facts.user_agent,
                    facts.cookie,
                    self._user(environ),
                    environ.get("REQUEST_METHOD") or "",
                    path,
                    environ.get("QUERY_STRING") or "",
                    self._route(environ),
                    exchange.status or 500,
                    (time.perf_counter() - exchange.started) * 1000.0,
                    exchange.size,
                    facts.referrer,
                )
            )
        except Exception as exc:  # noqa: BLE001
            self.client.count_error("recording a request", exc)

    def _route(self, environ: Environ) -> str:
        try:
            return str(self.route_of(environ) or "")
        except Exception as exc:  # noqa: BLE001
            self.client.count_error("route_of", exc)
            return ""

    def _refuse(self, start_response: StartResponse, decision: Decision, exchange: _Exchange) -> list[bytes]:
        """403 (block) or 429 with Retry-After (challenge) instead of the app."""
        if decision.action == "block":
            status, body = "403 Forbidden", b"Forbidden\n"
        else:
            status, body = "429 Too Many Requests", b"Too Many Requests\n"
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        if decision.action != "block":
            headers.append(("Retry-After", str(decision.retry_after_s(time.time_ns() // 1_000_000))))
        start_response(status, headers)
        exchange.status = int(status[:3])
        exchange.size = len(body)
        exchange.record()
        return [body]
