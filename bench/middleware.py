"""Per-request overhead of the SDK middlewares over a bare app, in process (target: p50 < 0.2 ms, p99 < 1 ms).

``python -m bench.middleware [--requests N]``. Each round calls the bare app and the wrapped app once with the same
request (alternating, so that machine noise hits both alike); the ASGI coroutines are driven directly (nothing in
them waits), so no event loop is timed. The client is real, with its sender thread running and encoding and
gzipping every batch, but posting to an in-memory transport. Variants: recording only; enforcement on with an
empty decision table; with 10 000 IP, 1 000 network, 1 000 user and 1 000 session decisions; and the same with
every request from a new address (the address cache never hits: the worst case).
Prints per-request times and the overhead (wrapped minus bare, per percentile) in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from hitmetrix.sdk import Client, HitmetrixASGI, HitmetrixWSGI
from hitmetrix.sdk.decisions import Decision, DecisionIndex
from hitmetrix.sdk.transport import Answer

BODY = b"x" * 2048
HEADERS = [
    (b"host", b"site.example"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537"),
    (b"accept", b"text/html,application/xhtml+xml"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"cookie", b"theme=dark; hm_sid=s0123456789abcdefghij; csrftoken=abcdefabcdefabcdef"),
    (b"x-forwarded-for", b"198.51.100.23, 10.0.0.2"),
    (b"referer", b"https://site.example/search?q=anna"),
]


class NullTransport:
    """Accepts every request at once: the bench measures the host's side, not the network."""

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        return Answer(200, {}, b'{"ok":true}')

    def close(self) -> None:
        pass


def asgi_bare() -> Callable[..., Any]:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": BODY})

    return app


def wsgi_bare() -> Callable[..., Any]:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [BODY]

    return app


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    pass


def time_asgi(app: Callable[..., Any], scope: dict) -> int:
    started = time.perf_counter_ns()
    coroutine = app(dict(scope), _receive, _send)
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    else:
        raise RuntimeError("the app waited for something: it cannot be timed without an event loop")
    return time.perf_counter_ns() - started


def time_wsgi(app: Callable[..., Any], environ: dict) -> int:
    started = time.perf_counter_ns()
    body = app(dict(environ), lambda status, headers, exc_info=None: None)
    for _chunk in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return time.perf_counter_ns() - started


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def big_index() -> DecisionIndex:
    decisions = [
        Decision(f"i{n}", "ip", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "block", "", None)
        for n in range(10_000)
    ]
    decisions += [
        Decision(f"n{n}", "net", f"172.{16 + n // 256}.{n % 256}.0/24", "block", "", None) for n in range(1000)
    ]
    decisions += [Decision(f"u{n}", "user", f"user-{n}", "challenge", "", None) for n in range(1000)]
    decisions += [Decision(f"s{n}", "session", f"sess-{n:012d}", "block", "", None) for n in range(1000)]
    return DecisionIndex(decisions)


def run(requests: int) -> dict[str, dict[str, float]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/profiles/17",
        "raw_path": b"/profiles/17",
        "query_string": b"tab=photos",
        "root_path": "",
        "headers": HEADERS,
        "client": ("127.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
    }
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/profiles/17",
        "QUERY_STRING": "tab=photos",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        **{"HTTP_" + k.decode().upper().replace("-", "_"): v.decode() for k, v in HEADERS},
    }
    # Every request from another address: the resolver's cache never helps (the worst case for enforcement).
    scopes = [{**scope, "headers": [*HEADERS[:-2], (b"x-forwarded-for", f"198.18.{n >> 8 & 255}.{n & 255}".encode())]}
              for n in range(4096)]  # fmt: skip
    environs = [{**environ, "HTTP_X_FORWARDED_FOR": f"198.18.{n >> 8 & 255}.{n & 255}"} for n in range(4096)]
    results: dict[str, dict[str, float]] = {}
    variants = [
        ("record", False, None, False),
        ("enforce, empty table", True, None, False),
        ("enforce, 13k decisions", True, big_index(), False),
        ("enforce, 13k, new address each", True, big_index(), True),
    ]
    for label, enforce, index, new_addresses in variants:
        client = Client(
            "http://127.0.0.1:9",
            "hm_sk_bench",
            trusted_proxies="127.0.0.1, 10.0.0.0/8",
            enforce=enforce,
            poll_s=3600,
            max_queue=1_000_000,
            transport_factory=NullTransport,
        )
        poller = client._poller
        if poller is not None:
            deadline = time.monotonic() + 10
            while poller.polls + poller.failed_polls == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # its first poll (answered empty) must not replace the table set below
            poller.index = index  # the poller's table, as a poll would fill it
        asgi = HitmetrixASGI(asgi_bare(), client, user_of=lambda scope: "user-77")
        wsgi = HitmetrixWSGI(
            wsgi_bare(), client, user_of=lambda environ: "user-77", route_of=lambda e: "/profiles/{id}"
        )
        for kind, bare, wrapped, timer, request, many in (
            ("asgi", asgi_bare(), asgi, time_asgi, scope, scopes),
            ("wsgi", wsgi_bare(), wsgi, time_wsgi, environ, environs),
        ):
            for _ in range(2000):  # warm up
                timer(bare, request)
                timer(wrapped, request)
            bare_ns: list[int] = []
            wrapped_ns: list[int] = []
            for n in range(requests):
                one = many[n % len(many)] if new_addresses else request
                if new_addresses and n % len(many) == 0:
                    client.addresses._cache.clear()  # so that no address is ever found in the cache
                bare_ns.append(timer(bare, one))
                wrapped_ns.append(timer(wrapped, one))
            results[f"{kind} / {label}"] = {
                "bare_p50_us": percentile(bare_ns, 0.5),
                "bare_p99_us": percentile(bare_ns, 0.99),
                "wrapped_p50_us": percentile(wrapped_ns, 0.5),
                "wrapped_p99_us": percentile(wrapped_ns, 0.99),
                "overhead_p50_us": percentile(wrapped_ns, 0.5) - percentile(bare_ns, 0.5),
                "overhead_p99_us": percentile(wrapped_ns, 0.99) - percentile(bare_ns, 0.99),
                "overhead_mean_us": (statistics.fmean(wrapped_ns) - statistics.fmean(bare_ns)) / 1000.0,
            }
        client.flush(30)
        stats = client.stats()
        client.close()
        if stats["errors"] or stats["dropped"]:
            raise SystemExit(f"the SDK dropped or failed during the bench: {stats}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests per variant and middleware")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = run(args.requests)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'middleware / variant':34} {'bare p50':>9} {'bare p99':>9} {'with p50':>9} {'with p99':>9} "
        f"{'+p50 µs':>8} {'+p99 µs':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:40} {r['bare_p50_us']:9.1f} {r['bare_p99_us']:9.1f} {r['wrapped_p50_us']:9.1f} "
            f"{r['wrapped_p99_us']:9.1f} {r['overhead_p50_us']:8.1f} {r['overhead_p99_us']:8.1f}"
        )
    print("targets: overhead p50 < 200 µs, p99 < 1000 µs")


if __name__ == "__main__":
    main()
