"""User-Agent → browser, OS and device type, with ua-parser's bundled regexes.

A parse costs about a millisecond, so results are cached by UA string (a site's
visitors share a few hundred distinct UAs). Only crawlers that ua-parser knows
(device family "Spider") are ``bot``: headless browsers are reported as what they
are (HeadlessChrome on Linux is a desktop) and left to the detectors.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import ua_parser

MAX_USER_AGENT_CHARS = 512
DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")

_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS", "Tizen"}
_TABLET_DEVICES = {"iPad", "Kindle", "Generic Tablet"}
_MOBILE_DEVICES = {"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"}


class AgentInfo(NamedTuple):
    browser: str
    browser_version: str  # major only
    os: str
    os_version: str  # major only
    device_type: str  # one of DEVICE_TYPES


def warm_user_agent_parser() -> None:
    """Build ua-parser's matchers now (~0.15 s) rather than on the first request."""
    _ = ua_parser.parser


def parse_user_agent(user_agent: str) -> AgentInfo:
    """Browser, OS and device type of a User-Agent header (truncated to ``MAX_USER_AGENT_CHARS``)."""
    return _parse(user_agent[:MAX_USER_AGENT_CHARS])


@lru_cache(maxsize=4096)
def _parse(user_agent: str) -> AgentInfo:
    if not user_agent:
        return AgentInfo("", "", "", "", "other")
    result = ua_parser.parse(user_agent)
    browser = _known(result.user_agent.family if result.user_agent else "")
    browser_version = (result.user_agent.major or "") if browser and result.user_agent else ""
    os_name = _known(result.os.family if result.os else "")
    os_version = (result.os.major or "") if os_name and result.os else ""
    device = result.device
    device_type = _device_type(
        user_agent,
        os_name,
        device.family if device else "",
        (device.brand or "") if device else "",
        bool(browser),
    )
    return AgentInfo(browser, browser_version, os_name, os_version, device_type)


def _known(family: str) -> str:
    return "" if family == "Other" else family


def _device_type(user_agent: str, os_name: str, device_family: str, device_brand: str, has_browser: bool) -> str:
    if device_family == "Spider":
        return "bot"
    if device_family in _TABLET_DEVICES or "Tablet" in device_brand or "Tablet" in device_family:
        return "tablet"
    if device_family in _MOBILE_DEVICES:
        return "mobile"
    if os_name in _MOBILE_OS:
        # Android tablets drop "Mobile" from their UA; phones keep it.
        if os_name == "Android" and "Mobile" not in user_agent:
            return "tablet"
        return "mobile"
    if os_name and has_browser:
        return "desktop"
    return "other"
