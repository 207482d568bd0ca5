"""Watching a replay in real Chromium: keyboard shortcuts, the player's length, masked typing, blocked
placeholders, and live replay of a session that is still being recorded.

A page on another origin than the dashboard (a static site in a thread) carries the real tracker;
Chromium visits it, and a signed-in dashboard page replays what was recorded. Screenshots go to
test-artifacts/watching/.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.dashboard import Member, demo_member, forge_recording, heading_document, sign_in, wait_replay_loaded
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"
SECRET = "hunter2"
NOTES = "abc"
# Live replay plays a few seconds behind the visitor (the tracker sends every 5 s, then the pipeline):
# each new action must show in the replay within this.
LIVE_BOUND_S = 25.0


def watched_page(hm: str, key: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Watched page</title>
<script async src="{hm}/hm.js" data-key="{key}"></script>
<style>body {{ font: 16px sans-serif; margin: 20px; }} .box {{ width: 300px; height: 120px; }}</style>
</head><body>
<h1 id="title">Watched page</h1>
<label>Password-like <input id="secret" autocomplete="off"></label>
<label>Notes <textarea id="notes"></textarea></label>
<div class="hm-block box" id="blocked-box">Card number 4111 1111 1111 1111</div>
<div data-hm-block id="blocked-two" style="width: 200px; height: 60px">Blocked by attribute</div>
<button id="add" onclick="var p = document.createElement('p'); p.className = 'mark';
  p.id = 'mark-' + document.querySelectorAll('.mark').length; p.textContent = p.id;
  document.getElementById('marks').appendChild(p)">Add a mark</button>
<div id="marks"></div>
</body></html>"""


class Site:
    """Static files on 127.0.0.1 from a thread: the visited site, another origin than the dashboard."""

    def __init__(self, root: Path) -> None:
        handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
        self.root = root
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@dataclass(frozen=True)
class Env:
    server: ServerProcess
    member: Member
    site: Site
    page_url: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("watching") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    root = tmp_path_factory.mktemp("watched-site")
    site = Site(root)
    (root / "watched.html").write_text(watched_page(server.url, member.project_key))
    try:
        yield Env(server, member, site, f"{site.url}/watched.html")
    finally:
        site.stop()
        server.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    from tests.e2e.conftest import ARTIFACTS

    folder = ARTIFACTS / "watching"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def post_batch(env: Env, batch: dict[str, Any]) -> None:
    answer = httpx.post(
        f"{env.server.url}/api/v1/batch", params={"key": env.member.project_key}, content=json.dumps(batch), timeout=30
    )
    assert answer.status_code == 200, answer.text


def session_body(env: Env, session_id: str) -> dict[str, Any] | None:
    r = env.server.api(f"/api/v1/projects/{env.member.project_id}/sessions/{session_id}")
    return r.json() if r.status_code == 200 else None


def start_visit(browser: Browser, env: Env) -> tuple[Page, str]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.goto(env.page_url)
    page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId && window.hitmetrix.sessionId()")
    return page, str(page.evaluate("() => window.hitmetrix.sessionId()"))


def open_replay(browser: Browser, env: Env, session_id: str) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, env.server.url, env.member)
    page.goto(f"{env.server.url}/projects/{env.member.project_id}/sessions/{session_id}")
    page.wait_for_function("() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=30_000)
    assert page.evaluate("() => window.hmReplay.error") is None
    return page, errors


@dataclass(frozen=True)
class Typed:
    session_id: str
    visit_end_ms: int


@pytest.fixture(scope="module")
def typed(browser: Browser, env: Env) -> Typed:
    """A finished visit: typing into a masked input and a textarea, key by key, next to blocked elements."""
    page, session_id = start_visit(browser, env)
    page.click("#secret")
    page.keyboard.type(SECRET, delay=150)
    page.click("#notes")
    page.keyboard.type(NOTES, delay=150)
    page.click("#title")
    page.click("#add")
    visit_end_ms = int(page.evaluate("() => Date.now()"))
    page.goto("about:blank")  # pagehide: the tracker sends the rest
    page.context.close()

    def stored() -> bool:
        body = session_body(env, session_id)
        chunks = body["recording_chunks"] if body else []
        return bool(chunks) and max(c["last_ts"] for c in chunks) >= visit_end_ms - 500

    wait_for(stored, 30, 0.2, what="the typed visit in the store")
    return Typed(session_id, visit_end_ms)


INPUT_EVENTS = """(id) => {
  const r = window.hmReplay.player.getReplayer();
  const start = r.getMetaData().startTime;
  return r.service.state.context.events
    .filter(e => e.type === 3 && e.data.source === 5)
    .map(e => ({id: e.data.id, text: e.data.text, offset: e.timestamp - start}));
}"""


def test_masked_typing_shows_as_it_happens(browser: Browser, env: Env, typed: Typed, shots: Path) -> None:
    page, errors = open_replay(browser, env, typed.session_id)
    wait_replay_loaded(page)
    page.evaluate("() => window.hmReplay.player.pause()")
    frame = page.frame_locator(REPLAY_FRAME)
    secret_id = page.evaluate(
        "() => { const r = hmReplay.player.getReplayer(); const doc = r.iframe.contentDocument;"
        " return r.getMirror().getId(doc.getElementById('secret')); }"
    )
    inputs = page.evaluate(INPUT_EVENTS, secret_id)
    typed_secret = [e for e in inputs if e["id"] == secret_id]
    # One input event a keystroke (not one at blur), each already masked.
    assert [e["text"] for e in typed_secret] == ["*" * n for n in range(1, len(SECRET) + 1)], typed_secret
    notes = [e["text"] for e in inputs if e["id"] != secret_id]
    assert notes == ["*" * n for n in range(1, len(NOTES) + 1)], notes
    for n, event in enumerate(typed_secret, start=1):
        page.evaluate("(ms) => window.hmReplay.seek(ms)", event["offset"] + 5)
        expect(frame.locator("#secret")).to_have_value("*" * n, timeout=5_000)
        if n == 4:
            page.screenshot(path=str(shots / "masked-typing-4-of-7.png"))
    assert SECRET not in json.dumps(inputs)
    assert errors == [], errors
    page.context.close()


def test_blocked_elements_show_a_placeholder(browser: Browser, env: Env, typed: Typed, shots: Path) -> None:
    page, errors = open_replay(browser, env, typed.session_id)
    wait_replay_loaded(page)
    frame = page.frame_locator(REPLAY_FRAME)
    # rrweb keeps a blocked element's tag, class and size only: in page order, .hm-block and [data-hm-block].
    placeholders = frame.locator("[data-hm-blocked]")
    expect(placeholders).to_have_count(2)
    for index, (width, height) in enumerate(((300, 120), (200, 60))):
        box = placeholders.nth(index)
        looks = box.evaluate(
            """el => {
              const s = getComputedStyle(el), after = getComputedStyle(el, '::after');
              return {w: el.offsetWidth, h: el.offsetHeight, bg: s.backgroundImage, label: after.content,
                      text: el.textContent};
            }"""
        )
        assert (looks["w"], looks["h"]) == (width, height), looks
        assert "repeating-linear-gradient" in looks["bg"], looks
        assert looks["label"] == '"Blocked"', looks
        assert looks["text"] == "", looks  # nothing of what was blocked is in the recording
    # An element nobody blocked gets no placeholder.
    assert frame.locator("#title").get_attribute("data-hm-blocked") is None
    placeholders.first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "blocked-placeholder.png"))
    assert errors == [], errors
    page.context.close()


def forged_short_recording(env: Env, session_ms: int, recorded_from_ms: int, recorded_to_ms: int) -> str:
    """A session whose analytics events span `session_ms`, with a recording from and to the given offsets."""
    # Over a minute ago: the visitor is gone, the session is not live.
    start = int(time.time() * 1000) - session_ms - 90_000
    node = heading_document("short", "Short recording")
    first = start + recorded_from_ms
    events = [
        {"type": 4, "timestamp": first, "data": {"href": env.page_url, "width": 1000, "height": 700}},
        {"type": 2, "timestamp": first + 1, "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}},
    ]
    for t in range(first + 500, start + recorded_to_ms + 1, 500):
        events.append(
            {
                "type": 3,
                "timestamp": t,
                "data": {"source": 1, "positions": [{"x": 10 + (t - first) // 50, "y": 20, "id": 3, "timeOffset": 0}]},
            }
        )
    session_id = forge_recording(env.server, env.member, events, env.page_url)
    # The forged batch has a pageview at the recording's start; the visitor stays on, then leaves.
    more = {
        "session_id": session_id,
        "anonymous_id": "anon" + session_id,
        "sent_at": int(time.time() * 1000),
        "events": [
            {"type": "pageview", "ts": start, "url": env.page_url},
            {"type": "pageleave", "ts": start + session_ms, "url": env.page_url},
        ],
    }
    post_batch(env, more)

    def whole() -> bool:
        body = session_body(env, session_id)
        return bool(body) and body["summary"]["duration_ms"] == session_ms  # type: ignore[index]

    wait_for(whole, 30, 0.2, what="the session's whole duration in the store")
    return session_id


def test_player_length_is_the_session_duration(browser: Browser, env: Env, typed: Typed, shots: Path) -> None:
    session_id = forged_short_recording(env, 30_000, 4_000, 12_000)
    page, errors = open_replay(browser, env, session_id)
    wait_replay_loaded(page)
    page.wait_for_function("() => window.hmReplay.player.getMetaData().totalTime >= 29000", timeout=10_000)
    meta = page.evaluate("() => window.hmReplay.player.getMetaData()")
    assert meta["totalTime"] == 30_000, meta  # the chunks span 8 s of it
    expect(page.locator(".rr-timeline__time").last).to_have_text("00:30")
    # The recording starts 4 s into the session, where its first snapshot is.
    snapshot_at = page.evaluate(
        "() => { const r = hmReplay.player.getReplayer(); const s = r.getMetaData().startTime;"
        " return r.service.state.context.events.find(e => e.type === 2).timestamp - s; }"
    )
    assert 3_990 <= snapshot_at <= 4_010, snapshot_at
    page.screenshot(path=str(shots / "player-length-30s.png"))
    assert errors == [], errors
    page.context.close()

    # A visit recorded by the real tracker: its player is as long as the session (within a tick of the clock).
    # Opened just after the visitor left, it may start live, and ends following once the page is left a while.
    page, errors = open_replay(browser, env, typed.session_id)
    wait_replay_loaded(page)
    page.wait_for_function("() => window.hmReplay.live === false", timeout=30_000)
    duration = session_body(env, typed.session_id)["summary"]["duration_ms"]  # type: ignore[index]
    page.wait_for_function(f"() => window.hmReplay.player.getMetaData().totalTime >= {duration}", timeout=10_000)
    total = page.evaluate("() => window.hmReplay.player.getMetaData().totalTime")
    assert duration <= total <= duration + 1500, (duration, total)
    assert errors == [], errors
    page.context.close()


def state(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => { const r = hmReplay.player.getReplayer();
          return {state: r.service.state.value, speed: r.config.speed, at: r.getCurrentTime()}; }"""
    )


def test_keyboard_shortcuts(browser: Browser, env: Env, shots: Path) -> None:
    session_id = forged_short_recording(env, 40_000, 1_000, 30_000)
    page, errors = open_replay(browser, env, session_id)
    wait_replay_loaded(page)
    page.wait_for_function("() => hmReplay.player.getReplayer().service.state.value === 'playing'")
    page.keyboard.press("Space")
    assert state(page)["state"] == "paused"
    page.evaluate("() => hmReplay.seek(12000)")

    def at(expected_ms: int) -> None:
        now = state(page)["at"]
        assert abs(now - expected_ms) <= 50, (now, expected_ms)

    at(12000)
    for key, expected in (
        ("ArrowRight", 17000),
        ("l", 27000),
        ("j", 17000),
        ("ArrowLeft", 12000),
        ("J", 2000),
        ("ArrowLeft", 0),
        ("L", 10000),
    ):
        page.keyboard.press(key)
        at(expected)
        assert state(page)["state"] == "paused", key
    page.keyboard.press("k")
    assert state(page)["state"] == "playing"
    page.keyboard.press("K")
    assert state(page)["state"] == "paused"

    speed_button = page.locator("#replay-root .rr-controller__btns button.active")
    for key, speed in ((">", 2), (">", 4), ("4", 8), (">", 8), ("<", 4), ("1", 1), ("2", 2)):
        page.keyboard.press(key)
        assert state(page)["speed"] == speed, key
        expect(speed_button).to_have_text(f"{speed}x")

    overlay = page.locator("#hm-keys")
    expect(overlay).to_be_hidden()
    page.keyboard.press("?")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Play / pause")
    expect(overlay).to_contain_text("Back / forward 10 s")
    page.screenshot(path=str(shots / "shortcuts-overlay.png"))
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()
    page.click("#hm-keys-button")
    expect(overlay).to_be_visible()
    page.click(".hm-keys-close")
    expect(overlay).to_be_hidden()

    # Focus in a text field: keys are typing, not shortcuts.
    page.evaluate(
        "() => { const i = document.createElement('input'); i.id = 'typing-here';"
        " document.querySelector('.hm-side-head').appendChild(i); }"
    )
    page.focus("#typing-here")
    before = state(page)
    page.keyboard.type(" kl>4?")
    after = state(page)
    assert (after["state"], after["speed"], abs(after["at"] - before["at"]) < 50) == (before["state"], 2, True)
    assert page.input_value("#typing-here") == " kl>4?"
    expect(overlay).to_be_hidden()

    # Space on the focused play button toggles once, not twice.
    page.locator("#typing-here").blur()
    play_button = page.locator(".rr-controller__btns button").first
    play_button.focus()
    page.keyboard.press("Space")
    assert state(page)["state"] == "playing"
    assert errors == [], errors
    page.context.close()


def test_live_replay_follows_a_session_in_progress(browser: Browser, env: Env, shots: Path) -> None:
    visitor, session_id = start_visit(browser, env)
    visitor.click("#secret")
    visitor.keyboard.type("a", delay=100)
    wait_for(lambda: (session_body(env, session_id) or {}).get("recording_chunks"), 30, 0.2, what="the first chunk")

    page, errors = open_replay(browser, env, session_id)
    assert page.evaluate("() => hmReplay.live") is True
    expect(page.locator("#hm-live")).to_be_visible()
    page.wait_for_function("() => hmReplay.atLive()", timeout=20_000)

    frame = page.frame_locator(REPLAY_FRAME)
    delays_s: list[float] = []
    for n in range(3):
        visitor.keyboard.type("bc", delay=200)  # activity between the marks
        visitor.click("#add")
        acted = time.monotonic()
        wait_for(
            lambda n=n: frame.locator(f"#mark-{n}").count() == 1, LIVE_BOUND_S, 0.1, what=f"mark {n} in the live replay"
        )
        delays_s.append(round(time.monotonic() - acted, 2))
    expect(frame.locator("#mark-2")).to_have_text("mark-2")
    page.screenshot(path=str(shots / "live-replay.png"))

    # Seek back: no longer at the live point, and "Jump to live" brings the player back there.
    page.keyboard.press("j")
    page.keyboard.press("j")
    jump = page.locator("#hm-jump-live")
    expect(jump).to_be_visible(timeout=5_000)
    assert page.evaluate("() => hmReplay.atLive()") is False
    page.screenshot(path=str(shots / "live-replay-behind.png"))
    jump.click()
    page.wait_for_function("() => hmReplay.atLive()", timeout=10_000)
    expect(jump).to_be_hidden()

    # After the jump, the next action still shows up.
    visitor.click("#add")
    acted = time.monotonic()
    wait_for(lambda: frame.locator("#mark-3").count() == 1, LIVE_BOUND_S, 0.1, what="mark 3 after jumping to live")
    delays_s.append(round(time.monotonic() - acted, 2))
    delay_ms = page.evaluate("() => hmReplay.liveDelayMs()")
    (shots / "live-delay.json").write_text(json.dumps({"delays_s": delays_s, "player_delay_ms": delay_ms}))
    print(f"live replay: action → replay delays {delays_s} s, player {delay_ms} ms behind the visitor")
    assert max(delays_s) <= LIVE_BOUND_S, delays_s
    assert errors == [], errors
    page.context.close()
    visitor.context.close()


def test_recording_progress_endpoint(env: Env, typed: Typed) -> None:
    base = f"/api/v1/projects/{env.member.project_id}/sessions/{typed.session_id}/recording/chunks"
    whole = env.server.api(base).json()
    seqs = [c["seq"] for c in whole["chunks"]]
    assert seqs == sorted(seqs) and seqs, whole
    assert set(whole) == {"chunks", "live", "now_ms", "started_at", "duration_ms"}
    after_first = env.server.api(f"{base}?since={seqs[0]}").json()
    assert [c["seq"] for c in after_first["chunks"]] == seqs[1:]
    for bad in ("-1", "x", "99999999999", "1.5"):
        r = env.server.api(f"{base}?since={bad}")
        assert r.status_code == 400 and r.json()["field"] == "since", (bad, r.text)
    assert env.server.api(base.replace(typed.session_id, "nosuchsession" + secrets.token_hex(4))).status_code == 404
