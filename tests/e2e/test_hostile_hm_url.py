"""A hostile recording's `hm-url` events are shown as text only.

The tracker sends a custom rrweb event tagged `hm-url` when the page's fragment changes, and the
replay page shows its `href` as the current URL (and gives the replay document that fragment). A
forged recording sends what the tracker never would: `javascript:` and `data:` URLs, markup, a
URL of 100 000 characters, and values that are not strings at all. In a signed-in dashboard in
real Chromium, each must show as plain text (or be ignored), never navigate the page or the replay,
and never run script.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.dashboard import Member, demo_member, forge_recording, heading_document, play_to_end
from tests.e2e.test_hostile_replay import CANARY, assert_nothing_ran, open_replay
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

PAGE_URL = "http://127.0.0.1:9/start.html"  # port 9 is refused at once: nothing leaves the machine
HUGE_URL = "https://shop.example/" + "a" * 100_000
MAX_SHOWN_URL_CHARS = 2048  # replay.ts


@dataclass(frozen=True)
class Env:
    server: ServerProcess
    member: Member


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("hostile-hm-url") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    yield Env(server, member)
    server.stop()


# (payload of the hm-url event, what the URL label shows after it: None = the previous URL stays)
CASES: list[tuple[Any, str | None]] = [
    ({"href": f"javascript:top.HM_CANARY=1;fetch('/{CANARY}-1')"}, f"javascript:top.HM_CANARY=1;fetch('/{CANARY}-1')"),
    ({"href": '<img src=x onerror="top.HM_CANARY=2">'}, '<img src=x onerror="top.HM_CANARY=2">'),
    (
        {"href": "http://127.0.0.1:9/start.html#<img src=x onerror=top.HM_CANARY=3>"},
        "http://127.0.0.1:9/start.html#<img src=x onerror=top.HM_CANARY=3>",
    ),
    ({"href": 12345}, None),
    ({"href": {"toString": "javascript:top.HM_CANARY=4"}}, None),
    ({"href": ["javascript:top.HM_CANARY=5"]}, None),
    ("javascript:top.HM_CANARY=6", None),
    (None, None),
    ({"href": "data:text/html,<script>top.HM_CANARY=7</script>"}, "data:text/html,<script>top.HM_CANARY=7</script>"),
    ({"href": HUGE_URL}, HUGE_URL[:MAX_SHOWN_URL_CHARS]),
    ({"href": "vbscript:msgbox(1)"}, "vbscript:msgbox(1)"),
]


def hostile_recording(start_ms: int) -> list[dict[str, Any]]:
    document = heading_document("title", "A page whose URL events lie")
    events: list[dict[str, Any]] = [
        {"type": 4, "timestamp": start_ms, "data": {"href": PAGE_URL, "width": 1000, "height": 700}},
        {"type": 2, "timestamp": start_ms + 5, "data": {"node": document, "initialOffset": {"left": 0, "top": 0}}},
    ]
    for i, (payload, _) in enumerate(CASES, start=1):
        events.append({"type": 5, "timestamp": start_ms + 1000 * i, "data": {"tag": "hm-url", "payload": payload}})
    events.append(
        {
            "type": 3,
            "timestamp": start_ms + 1000 * (len(CASES) + 2),
            "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": 4, "timeOffset": 0}]},
        }
    )
    return events


def test_hostile_hm_url_events_show_as_text_only(browser: Browser, env: Env, artifacts: Path) -> None:
    start = int(time.time() * 1000) - 120_000  # long finished: replayed, not followed live
    session_id = forge_recording(env.server, env.member, hostile_recording(start), PAGE_URL)
    page, requests, errors = open_replay(browser, env, session_id)  # type: ignore[arg-type]
    page.evaluate("() => window.hmReplay.player.pause()")
    label = page.locator("#hm-current-url")
    frame_start = page.evaluate("() => window.hmReplay.player.getMetaData().startTime")
    shown = PAGE_URL
    for i, (payload, expected) in enumerate(CASES, start=1):
        shown = expected if expected is not None else shown
        page.evaluate("(ms) => window.hmReplay.seek(ms)", start + 1000 * i - frame_start + 100)
        expect(label).to_have_text(shown, timeout=5_000)
        assert label.evaluate("el => el.children.length") == 0, payload
        assert label.get_attribute("title") == shown
        # The replay document only ever gets a fragment (rrweb's rebuild gave it the dashboard page's URL):
        # it is never navigated to another document.
        where = page.evaluate("() => document.querySelector('.replayer-wrapper iframe').contentWindow.location.href")
        assert where.split("#")[0] in ("about:blank", page.url.split("#")[0]), (payload, where)
    page.screenshot(path=str(artifacts / "replay-hostile-hm-url.png"))
    # Played through to the end as well: every event cast, nothing ran, nothing left, nothing navigated.
    play_to_end(page)
    expect(page.frame_locator(".replayer-wrapper iframe").locator("#title")).to_have_text("A page whose URL events lie")
    assert_nothing_ran(page, requests, errors)
    assert not [u for u in requests if u.startswith(("javascript:", "data:", "vbscript:"))]
    assert page.locator("#replay-root img").count() == 0
    page.context.close()
