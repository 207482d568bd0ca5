"""Client: standard-library-only import, track_auth from every kind of request object, configuration errors, stats."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from hitmetrix.sdk import Client
from tests.sdk.memory import MemoryTransport
from tests.support import REPO

SID = "sess_0123456789"
HEAVY = ["starlette", "chdb", "pyarrow", "msgspec", "numpy", "sqlalchemy", "httpx", "orjson", "uvicorn", "jinja2"]


def test_imports_with_the_standard_library_only() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        HEAVY = {HEAVY!r}

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in HEAVY:
                    raise ImportError("the SDK must not import " + name)
                return None

        sys.meta_path.insert(0, Refuse())
        from hitmetrix.sdk import Client, HitmetrixASGI, HitmetrixWSGI
        client = Client("http://127.0.0.1:9", "hm_sk_x", enforce=True)
        client.track_auth("signin", "a@example.com", False)
        client.close(0.5)
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in HEAVY))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []"


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def client(transport: MemoryTransport) -> Iterator[Client]:
    made = Client(
        "http://127.0.0.1:9", "hm_sk_x", "10.0.0.0/8", flush_interval_s=60, transport_factory=transport.factory
    )
    yield made
    made.close(1)


class StarletteLike:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope


class FlaskLike:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ


class DjangoLike:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


SCOPE = {
    "type": "http",
    "client": ("10.0.0.2", 5000),
    "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"cookie", f"hm_sid={SID}".encode()), (b"user-agent", b"UA")],
}
ENVIRON = {
    "REQUEST_METHOD": "POST",
    "REMOTE_ADDR": "10.0.0.2",
    "HTTP_X_FORWARDED_FOR": "203.0.113.7",
    "HTTP_COOKIE": f"hm_sid={SID}",
    "HTTP_USER_AGENT": "UA",
}


@pytest.mark.parametrize(
    "request_object",
    [SCOPE, ENVIRON, StarletteLike(SCOPE), FlaskLike(ENVIRON), DjangoLike(ENVIRON)],
    ids=["asgi-scope", "wsgi-environ", "starlette", "flask", "django"],
)
def test_track_auth_reads_any_request_object(client: Client, transport: MemoryTransport, request_object: Any) -> None:
    assert client.track_auth("signup", "Anna@Example.com", True, request=request_object, user_id=7, reason="")
    assert client.flush(5)
    [event] = transport.events()
    assert {k: event[k] for k in ("ip", "session_id", "user_agent", "kind", "ok", "username", "user_id")} == {
        "ip": "203.0.113.7",
        "session_id": SID,
        "user_agent": "UA",
        "kind": "signup",
        "ok": True,
        "username": "Anna@Example.com",
        "user_id": "7",
    }


def test_track_auth_without_a_request(client: Client, transport: MemoryTransport) -> None:
    assert client.track_auth("reset", "anna@example.com", False, reason="unknown account")
    assert client.flush(5)
    [event] = transport.events()
    assert (event["ip"], event["session_id"], event["reason"]) == ("", "", "unknown account")


def test_track_auth_with_a_wrong_kind_is_counted_not_raised(client: Client) -> None:
    assert client.track_auth("login", "anna@example.com", True) is False
    stats = client.stats()
    assert stats["errors"] == 1
    assert "kind must be one of signin, signup, reset, signout" in stats["last_error"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"server_key": ""}, "server_key is required"),
        ({"endpoint": "hitmetrix.example"}, "endpoint must be an http"),
        ({"trusted_proxies": "proxy.local"}, "not an IP address or CIDR"),
        ({"max_queue": 0}, "must be positive"),
        ({"source": "browser"}, "source must be"),
    ],
)
def test_configuration_mistakes_fail_at_start_up(options: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"endpoint": "http://127.0.0.1:9", "server_key": "hm_sk_x", **options}
    with pytest.raises(ValueError, match=message):
        Client(**settings)


def test_stats_has_the_documented_counters(client: Client) -> None:
    stats = client.stats()
    assert {"queued", "sent", "dropped", "failed_posts", "decisions"} <= set(stats)
    assert set(stats["dropped_by_reason"]) == {"queue_full", "refused", "gave_up", "closed", "unencodable"}
    assert client.stats()["errors"] == 0


def test_close_is_idempotent(client: Client) -> None:
    client.close(1)
    client.close(1)
    assert client.track_auth("signout", "a@example.com", True) is False
    assert client.stats()["dropped_by_reason"]["closed"] == 1


def test_a_forked_worker_gets_its_own_sender() -> None:
    """gunicorn --preload makes the client in the master and forks workers: threads do not survive a fork."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from hitmetrix.sdk import Client
        from hitmetrix.sdk.transport import Answer

        class Accept:
            def request(self, method, path, body, headers):
                return Answer(200, {}, b"{}")
            def close(self):
                pass

        client = Client("http://127.0.0.1:9", "hm_sk_x", flush_interval_s=60, transport_factory=Accept,
                        enforce=True, poll_s=0.05)
        pid = os.fork()
        if pid == 0:
            client.track_auth("signin", "a@example.com", True)
            done = client.flush(10)
            polls = client.stats()["decision_polls"]
            for _ in range(200):  # bounded: the child's own poller must keep polling
                if client.stats()["decision_polls"] > polls + 1:
                    break
                time.sleep(0.05)
            print("child", done, client.stats()["sent"], client.stats()["decision_polls"] > polls + 1, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        client.track_auth("signin", "b@example.com", True)
        print("parent", client.flush(10), client.stats()["sent"], flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["child True 1 True", "parent True 1"]
