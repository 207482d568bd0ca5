"""hitmetrix/capture/useragent.py: browser, OS and device type."""

from __future__ import annotations

import pytest

from hitmetrix.capture.useragent import AgentInfo, parse_user_agent
from tests.capture.builders import CHROME_UA

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME_UA, AgentInfo("Chrome", "131", "Windows", "10", "desktop")),
        (IPHONE, AgentInfo("Mobile Safari", "17", "iOS", "17", "mobile")),
        (IPAD, AgentInfo("Mobile Safari", "17", "iOS", "17", "tablet")),
        (ANDROID_TABLET, AgentInfo("Chrome", "131", "Android", "13", "tablet")),
        (GOOGLEBOT, AgentInfo("Googlebot", "2", "", "", "bot")),
        (HEADLESS, AgentInfo("HeadlessChrome", "131", "Linux", "", "desktop")),
        ("curl/8.5.0", AgentInfo("curl", "8", "", "", "other")),
        ("", AgentInfo("", "", "", "", "other")),
    ],
)
def test_parse(user_agent: str, expected: AgentInfo) -> None:
    assert parse_user_agent(user_agent) == expected


def test_huge_user_agents_are_truncated_before_parsing() -> None:
    assert parse_user_agent(CHROME_UA + " x" * 100_000) == parse_user_agent(CHROME_UA + " x" * 200_000)
