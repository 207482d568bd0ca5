"""A simulated client of the demo site over real HTTP: its own address (X-Forwarded-For through the trusted
proxy 127.0.0.1), user agent and cookies, and, for a browser-like visitor, the tracker's batches.

A browser runs the tracker: it sets the first-party ``hm_sid`` cookie and, for every page, posts a batch to
``/api/v1/batch`` (a pageview, and the page's ``signals`` with human pointer and typing figures), from the same
address and user agent. A visitor without ``js`` sends none of it, exactly like a script or a no-JS client.
Every request's start and answer times (wall clock, ms) are kept in ``actions``: the scenario runner measures
the time to alert from the answer of the request that crossed a detector's threshold.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0"
)
BROWSERS = (CHROME, FIREFOX, SAFARI_MAC, IPHONE, EDGE)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str = "") -> str:
    return (prefix + uuid.uuid4().hex)[:32]


@dataclass
class Action:
    """One HTTP exchange of a scenario: what it was and when (wall-clock ms) it started and was answered."""

    what: str
    start_ms: int
    answered_ms: int
    status: int


@dataclass
class Log:
    """Everything a scenario did and who it was: the runner attributes alerts with it."""

    actions: list[Action] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)  # hm_sid values it used (tracker sessions)
    usernames: set[str] = field(default_factory=set)
    member_ids: set[int] = field(default_factory=set)
    user_agents: set[tuple[str, str]] = field(default_factory=set)  # (address, user agent) for timeline sessions


class Visitor:
    """One client: an address, a user agent, a cookie jar and, with ``js``, a running tracker.

    ``device`` is the tracker's coarse device hash (same browser on the same machine: same hash); ``typing_ms``
    the (median, mad, min) key intervals its signals report; ``session_id`` reuses a given ``hm_sid``
    (a stolen cookie, or the same tab after travelling)."""

    def __init__(
        self,
        base_url: str,
        log: Log,
        address: str,
        user_agent: str,
        *,
        js: bool = False,
        public_key: str = "",
        device: str | None = None,
        session_id: str | None = None,
        typing_ms: tuple[float, float, float] = (160.0, 45.0, 70.0),
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url
        self.log = log
        self.address = address
        self.user_agent = user_agent
        self.js = js
        self.public_key = public_key
        self.device = device or hashlib.blake2b(f"{user_agent}|{address}".encode(), digest_size=8).hexdigest()
        self.typing_ms = typing_ms
        self.rng = rng or random.Random(address)
        self.http = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": user_agent, "X-Forwarded-For": address, "Accept-Language": "en-GB,en;q=0.9"},
            timeout=30.0,
            follow_redirects=True,
        )
        self.session_id = ""
        self.anonymous_id = new_id("a")
        if js or session_id:
            self.session_id = session_id or new_id("s")
            self.http.cookies.set("hm_sid", self.session_id, domain="127.0.0.1", path="/")
            log.sessions.add(self.session_id)
        log.addresses.add(address)
        log.user_agents.add((address, user_agent))
        self.pages = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Visitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------------------

    def _timed(self, what: str, send: Any) -> httpx.Response:
        start = now_ms()
        response: httpx.Response = send()
        self.log.actions.append(Action(what, start, now_ms(), response.status_code))
        return response

    def get(self, path: str, *, page: bool = True, **signals: Any) -> httpx.Response:
        """GET a page; a browser then runs the tracker on it (pageview and signals)."""
        response = self._timed(f"GET {path}", lambda: self.http.get(path))
        if self.js and page and response.headers.get("content-type", "").startswith("text/html"):
            self.track_page(str(response.url), **signals)
        return response

    def post_form(self, path: str, form: dict[str, str], *, track: bool = True) -> httpx.Response:
        """Submit a form; a browser's tracker first reports the click and submit (unless the caller did)."""
        if self.js and track:
            ts = now_ms()
            self.send_events([
                self.event("click", ts - 400, name="button", props={"selector": "button[type=submit]"}),
                self.event("submit", ts - 300, name="form"),
            ])
        return self._timed(f"POST {path}", lambda: self.http.post(path, data=form))

    # -- the tracker ---------------------------------------------------------------------------------------

    def event(self, kind: str, ts: int, *, name: str = "", url: str = "", props: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        found: dict[str, Any] = {"type": kind, "ts": ts, "id": str(uuid.uuid4()), "name": name}
        if url:
            found["url"] = url
        if props is not None:
            found["props"] = props
        return found

    def human_signals(self, **override: Any) -> dict[str, Any]:
        median, mad, low = self.typing_ms
        props: dict[str, Any] = {
            "webdriver": False,
            "headless": [],
            "ua_ch_mismatch": False,
            "pointer_moves": self.rng.randrange(25, 200),
            "clicks": 1,
            "clicks_without_move": 0,
            "keys": self.rng.randrange(12, 40),
            "key_interval_ms": {"median": median + self.rng.uniform(-20, 20), "mad": mad, "min": low},
            "touch": "iPhone" in self.user_agent,
            "device": self.device,
        }
        props.update(override)
        return props

    def track_page(self, url: str, **signals: Any) -> None:
        ts = now_ms()
        self.pages += 1
        events = [self.event("pageview", ts, url=url)]
        events.append(self.event("signals", ts + 5, url=url, props=self.human_signals(**signals)))
        self.send_events(events)

    def send_events(self, events: list[dict[str, Any]]) -> httpx.Response:
        """One tracker batch, as the browser posts it (text/plain, same address, agent and cookies)."""
        body = {
            "key": self.public_key,
            "batch_id": new_id("b"),
            "session_id": self.session_id,
            "anonymous_id": self.anonymous_id,
            "sent_at": now_ms(),
            "events": events,
        }
        response = self._timed("tracker batch", lambda: self.http.post(
            "/api/v1/batch", json=body, headers={"Content-Type": "text/plain", "Origin": self.base_url}))
        if response.status_code != 200:
            raise RuntimeError(f"the tracker batch was refused: {response.status_code} {response.text[:200]}")
        return response

    # -- the demo site -------------------------------------------------------------------------------------

    def sign_in(self, email: str, password: str) -> bool:
        """Sign in through the form; True when the site let us in (a failure answers 200 with an error text)."""
        self.log.usernames.add(email)
        if self.js:
            self.get("/demo/signin")
        response = self.post_form("/demo/signin", {"email": email, "password": password})
        return "Wrong email or password" not in response.text and response.status_code == 200

    def sign_out(self) -> None:
        self.post_form("/demo/signout", {})

    def pause(self, low_s: float, high_s: float) -> None:
        """Think time between steps (the scenario's pace, not synchronisation)."""
        time.sleep(self.rng.uniform(low_s, high_s))
