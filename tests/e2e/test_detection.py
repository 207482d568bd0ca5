"""Detection in real Chromium: a Playwright sign-up bot on the demo site (form filled instantly, no pointer
movement, the default headless user agent) is alerted as automation, a person signing up (mouse moves, typing at a
human, uneven pace, navigator.webdriver false) is not, and the alert's page opens the bot's replay at the moment
of the attack. The bot has its own address through X-Forwarded-For (127.0.0.1 is the trusted proxy), so
alerts about the bot's address are not the person's; the person is judged by its session and device."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Page, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.dashboard import Member, demo_member, sign_in
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

BOT_ADDRESS = "198.18.200.7"
REPLAY_FRAME = ".replayer-wrapper iframe"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Member]]:
    data_dir = tmp_path_factory.mktemp("detection") / "data"
    member = demo_member(data_dir)
    s = ServerProcess(data_dir, demo=True, env={"HITMETRIX_TRUSTED_PROXIES": "127.0.0.1"}).start()
    yield s, member
    s.stop()


@pytest.fixture(scope="module")
def artifacts_dir(artifacts: Path) -> Path:
    found = artifacts / "detection"
    found.mkdir(parents=True, exist_ok=True)
    return found


def session_of(page: Page) -> str:
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    return str(page.evaluate("() => window.hitmetrix.sessionId()"))


def run_bot(chromium: BrowserType, base: str, shots: Path) -> str:
    """A sign-up bot: plain headless Chromium (webdriver true, HeadlessChrome agent), fields filled at once,
    submitted with Enter, no pointer ever moved. Its tracker session id."""
    browser = chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        context = browser.new_context(extra_http_headers={"X-Forwarded-For": BOT_ADDRESS})
        page = context.new_page()
        page.goto(base + "/demo/")
        session_id = session_of(page)
        page.wait_for_timeout(2500)  # the bot's own pace: the attack is a few seconds into its recording
        page.goto(base + "/demo/signup")
        page.fill("#name", "Bot Account")
        page.fill("#email", f"bot-{random.randrange(10**9)}@mailbox.example")
        page.fill("#password", "bot-password-123")
        page.fill("#age", "29")
        page.fill("#city", "Riga")
        page.screenshot(path=str(shots / "bot-signup.png"))
        page.press("#city", "Enter")
        page.wait_for_url("**/demo/members/*")
        assert session_of(page) == session_id
        page.wait_for_timeout(1500)  # the profile page it landed on is recorded too
        page.goto("about:blank")  # pagehide: the tracker hands its last batches to sendBeacon
        context.close()
        return session_id
    finally:
        browser.close()


def human_type(page: Page, selector: str, text: str, rng: random.Random, *, first: bool = False) -> None:
    """The pointer drifts to the field; the person moves there with Tab (the first field has the focus already)
    and types key by key at an uneven pace. No click before the submit button: the tracker sends the page's
    signals at its first click, so this way they carry the whole form's typing cadence."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + rng.uniform(5, 40), box["y"] + box["height"] / 2, steps=rng.randrange(8, 20))
    if first:
        page.focus(selector)
    else:
        page.keyboard.press("Tab")
    for char in text:
        page.wait_for_timeout(rng.uniform(70, 260))  # a person's uneven typing, key by key
        page.keyboard.type(char)


def run_person(chromium: BrowserType, version: str, base: str, shots: Path) -> str:
    """A person: webdriver hidden, a normal Chrome agent, the mouse moving to each field, typing unevenly."""
    # The agent as a launch flag: a context's override misses the requests the browser makes on its own
    # (sendBeacon at pagehide), which would then show a second, headless agent on the same session.
    agent = f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version} Safari/537.36"
    browser = chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--disable-blink-features=AutomationControlled", f"--user-agent={agent}"],
    )
    try:
        # No X-Forwarded-For for the person: Chromium sends sendBeacon (the tracker's batches at pagehide)
        # without a context's extra headers, so a forwarded address would make the session look like it
        # hops between two networks. The person is plainly 127.0.0.1; the bot's alerts are told apart by
        # session and device below.
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        rng = random.Random(7)
        page.goto(base + "/demo/")
        session_id = session_of(page)
        assert page.evaluate("() => navigator.webdriver") is False
        for _ in range(6):
            page.mouse.move(rng.uniform(50, 1200), rng.uniform(50, 800), steps=rng.randrange(5, 15))
        page.goto(base + "/demo/signup")
        human_type(page, "#name", "Ada Person", rng, first=True)
        human_type(page, "#email", f"ada{rng.randrange(10**6)}@example.net", rng)
        human_type(page, "#password", "correct horse 42", rng)
        human_type(page, "#age", "34", rng)
        human_type(page, "#city", "Hamburg", rng)
        box = page.locator("#signup-submit").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=12)
        page.screenshot(path=str(shots / "person-signup.png"))
        page.mouse.down()
        page.mouse.up()
        page.wait_for_url("**/demo/members/*")
        page.mouse.move(300, 300, steps=10)
        page.goto("about:blank")
        context.close()
        return session_id
    finally:
        browser.close()


def alerts(server: ServerProcess, project_id: int) -> list[dict[str, Any]]:
    r = server.api(f"/api/v1/projects/{project_id}/security/alerts?limit=200")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["alerts"]
    return found


def person_signals(server: ServerProcess, project_id: int, session_id: str) -> list[dict[str, Any]]:
    events = server.api(f"/api/v1/projects/{project_id}/sessions/{session_id}").json()["events"]
    return [json.loads(e["props"]) for e in events if e["type"] == "signals"]


def detection_caught_up(server: ServerProcess, last: list[tuple[int, int, float]]) -> bool:
    """Detection's event count unchanged for 3 s with no sealed segment behind: it has seen all that was sent."""
    detection = server.api("/healthz").json()["detection"]
    state = (int(detection["detect_counters"]["events"]), int(detection["detect_segments_behind"]))
    if not last or last[0][:2] != state or state[1]:
        last[:] = [(*state, time.monotonic())]
        return False
    return time.monotonic() - last[0][2] >= 3.0


def test_a_signup_bot_is_alerted_a_person_is_not_and_the_alert_replays_the_moment(
    server: tuple[ServerProcess, Member], browser: Browser, artifacts_dir: Path
) -> None:
    s, member = server
    pid = member.project_id
    bot = run_bot(browser.browser_type, s.url, artifacts_dir)
    person = run_person(browser.browser_type, browser.version, s.url, artifacts_dir)

    def bot_alert() -> dict[str, Any] | None:
        return next((a for a in alerts(s, pid) if a["rule"] == "automation" and a["entity_value"] == bot), None)

    alert = wait_for(bot_alert, 30, 0.2, what="an automation alert on the bot's session")
    text = " ".join(alert["reasons"])
    assert "webdriver" in text, alert
    assert alert["severity"] in ("high", "critical"), alert

    # The person's events were seen by detection and raised nothing about the person.
    wait_for(lambda: any(p["keys"] >= 10 for p in person_signals(s, pid, person)), 30, 0.2,
             what="the person's sign-up page signals in the store")
    last: list[tuple[int, int, float]] = []
    wait_for(lambda: detection_caught_up(s, last), 30, 0.2, what="detection caught up")
    signals = person_signals(s, pid, person)
    signup_page = max(signals, key=lambda props: props["keys"])
    assert signup_page["webdriver"] is False and signup_page["headless"] == [], signup_page
    assert signup_page["keys"] >= 10 and signup_page["pointer_moves"] > 0, signup_page  # the cadence was judged
    device = signup_page["device"]
    about_person = [
        a for a in alerts(s, pid)
        if a["entity_value"] == person or a["entity_value"].startswith(device + ":")
        or any(sid == person for sid, _ in a["sessions"])
    ]
    assert about_person == [], [(a["rule"], a["entity_kind"], a["reasons"]) for a in about_person]

    # The alert page: the reasons, the bot's session as evidence, its replay opened at the moment.
    moment_ms = next(ts for sid, ts in alert["sessions"] if sid == bot)

    def recorded_evidence() -> dict[str, Any] | None:
        detail = s.api(f"/api/v1/projects/{pid}/security/alerts/{alert['id']}").json()
        found = next((e for e in detail["evidence"] if e["session_id"] == bot), None)
        return found if found and found["recorded"] else None

    evidence = wait_for(recorded_evidence, 30, 0.3, what="the bot's recording stored")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, s.url, member)
        page.goto(f"{s.url}/projects/{pid}/security/alerts/{alert['id']}")
        expect(page.locator("h1")).to_contain_text("automation")
        expect(page.locator("#reasons")).to_contain_text("webdriver")
        card = page.locator(f".evidence[data-session='{bot}']")
        expect(card).to_be_visible()
        page.screenshot(path=str(artifacts_dir / "alert-page.png"), full_page=True)
        card.locator(".replay-link").click()
        page.wait_for_function(
            "() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=20_000
        )
        assert page.evaluate("() => window.hmReplay.error") is None
        expect(page.frame_locator(REPLAY_FRAME).locator("body")).to_contain_text("Lovebirds", timeout=10_000)
        page.wait_for_function("() => hmReplay.loadedChunks === hmReplay.totalChunks", timeout=20_000)
        start_ms = float(page.evaluate("() => window.hmReplay.player.getMetaData().startTime"))
        current_ms = float(page.evaluate("() => window.hmReplay.currentTime()"))
        page.screenshot(path=str(artifacts_dir / "alert-replay.png"))
        # The link carries whole seconds from the session's start: the replay stands within ~2 s of the moment.
        assert current_ms >= 1000, (current_ms, evidence)
        assert abs(start_ms + current_ms - moment_ms) <= 2000, (start_ms, current_ms, moment_ms, evidence)
        # Played from there, it runs through the attack moment.
        page.evaluate("() => window.hmReplay.player.play()")
        page.wait_for_function(f"() => window.hmReplay.currentTime() > {moment_ms - start_ms + 300}", timeout=15_000)
        page.screenshot(path=str(artifacts_dir / "alert-replay-after-moment.png"))
        assert errors == [], errors
    finally:
        context.close()
