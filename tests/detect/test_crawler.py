"""hitmetrix/detect/crawler.py: claimed crawlers checked by reverse then forward DNS, cached, bounded, off the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from hitmetrix.detect.crawler import CrawlerVerifier, HostsFileResolver, check_crawler, claimed_crawler

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"


@pytest.mark.parametrize(
    ("agent", "crawler"),
    [(GOOGLEBOT, "googlebot"), (BINGBOT, "bingbot"), ("Mozilla/5.0 (Applebot/0.1)", "applebot"),
     ("Mozilla/5.0 (compatible; YandexBot/3.0)", "yandexbot"), ("Mozilla/5.0 Chrome/131 Safari/537.36", ""),
     ("curl/8.0", ""), ("", "")],
)
def test_claims(agent: str, crawler: str) -> None:
    assert claimed_crawler(agent) == crawler


def hosts(tmp_path: Path) -> HostsFileResolver:
    path = tmp_path / "dns"
    path.write_text(
        "# address name\n"
        "66.249.66.1 crawl-66-249-66-1.googlebot.com\n"
        "157.55.39.1 msnbot-157-55-39-1.search.msn.com.\n"
        "PTR 198.51.100.9 crawl-fake.googlebot.com\n"
        "A crawl-fake.googlebot.com 66.249.66.2\n"
        "203.0.113.5 googlebot.com.evil.example\n"
    )
    return HostsFileResolver(path)


def test_reverse_then_forward(tmp_path: Path) -> None:
    resolver = hosts(tmp_path)
    assert check_crawler(resolver, "googlebot", "66.249.66.1")
    assert check_crawler(resolver, "bingbot", "157.55.39.1")
    assert not check_crawler(resolver, "bingbot", "66.249.66.1")  # a Google address claiming Bing
    assert not check_crawler(resolver, "googlebot", "198.51.100.9")  # PTR says Google, forward disagrees
    assert not check_crawler(resolver, "googlebot", "203.0.113.5")  # the domain only looks like Google's
    assert not check_crawler(resolver, "googlebot", "192.0.2.1")  # no PTR at all


class CountingResolver:
    def __init__(self, inner: HostsFileResolver, gate: threading.Event | None = None) -> None:
        self.inner, self.gate, self.reverses = inner, gate, 0

    def reverse(self, address: str) -> str | None:
        self.reverses += 1
        if self.gate is not None:
            self.gate.wait(10)
        return self.inner.reverse(address)

    def forward(self, name: str) -> set[str]:
        return self.inner.forward(name)


def test_answers_are_cached(tmp_path: Path) -> None:
    resolver = CountingResolver(hosts(tmp_path))
    verifier = CrawlerVerifier(resolver, timeout_s=5)
    try:
        assert asyncio.run(verifier.verify("googlebot", "66.249.66.1")) == "verified"
        assert asyncio.run(verifier.verify("googlebot", "198.51.100.9")) == "unverified"
        assert verifier.status("googlebot", "66.249.66.1") == "verified"
        assert asyncio.run(verifier.verify("googlebot", "198.51.100.9")) == "unverified"
        assert resolver.reverses == 2
    finally:
        verifier.close()


def test_a_slow_resolver_answers_unverified_then_the_cache_knows(tmp_path: Path) -> None:
    gate = threading.Event()
    resolver = CountingResolver(hosts(tmp_path), gate)
    verifier = CrawlerVerifier(resolver, timeout_s=0.05)
    try:
        assert asyncio.run(verifier.verify("googlebot", "66.249.66.1")) == "unverified"  # waited 50 ms, no more
        assert verifier.status("googlebot", "66.249.66.1") is None  # still looking
        gate.set()
        from tests.support import wait_for

        wait_for(lambda: verifier.status("googlebot", "66.249.66.1") == "verified", 10, what="the lookup")
        assert resolver.reverses == 1
    finally:
        gate.set()
        verifier.close()


def test_lookups_in_flight_are_bounded(tmp_path: Path) -> None:
    gate = threading.Event()
    verifier = CrawlerVerifier(CountingResolver(hosts(tmp_path), gate), timeout_s=0.01)
    try:
        for n in range(200):  # a flood of fake Googlebots from many addresses
            verifier.status("googlebot", f"10.0.{n // 250}.{n % 250}")
        assert verifier.skipped_busy == 200 - 64
    finally:
        gate.set()
        verifier.close()


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    verifier = CrawlerVerifier(hosts(tmp_path), timeout_s=5, max_entries=10)
    try:
        for n in range(30):
            asyncio.run(verifier.verify("googlebot", f"192.0.2.{n}"))
        assert verifier.cache_entries == 10
    finally:
        verifier.close()
