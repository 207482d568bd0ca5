"""The SDK's trusted-proxy rule agrees with capture's (hitmetrix/capture/network.py) on every case."""

from __future__ import annotations

import pytest

from hitmetrix.capture import network as capture_network
from hitmetrix.sdk import network

TRUSTED = "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8"
CASES = [
    # (peer, X-Forwarded-For, expected client)
    ("203.0.113.7", "", "203.0.113.7"),
    ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # untrusted peer: its XFF is ignored
    ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
    ("127.0.0.1", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # left entries may be forged
    ("127.0.0.1", "198.51.100.1, 10.0.0.5", "198.51.100.1"),  # trusted hops skipped from the right
    ("127.0.0.1", "10.0.0.9, 10.0.0.5", "10.0.0.9"),  # all trusted: the left-most
    ("127.0.0.1", "198.51.100.1, garbage, 10.0.0.5", "10.0.0.5"),  # stop at an unparsable hop
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"),
    ("127.0.0.1", "203.0.113.9:51234", "203.0.113.9"),
    ("::1", "2001:db8::1", "2001:db8::1"),
    ("::ffff:127.0.0.1", "198.51.100.2", "198.51.100.2"),  # IPv4-mapped peer is the IPv4 address
    ("127.0.0.1", "::ffff:198.51.100.3", "198.51.100.3"),
    ("", "198.51.100.1", ""),
    ("not-an-ip", "198.51.100.1", ""),
    ("fd00::5", "2001:db8::9, fd00::1", "2001:db8::9"),
]


@pytest.mark.parametrize(("peer", "forwarded_for", "expected"), CASES)
def test_client_ip_follows_the_trusted_proxy_rule(peer: str, forwarded_for: str, expected: str) -> None:
    trusted = network.parse_trusted_proxies(TRUSTED)
    assert network.client_ip(peer, forwarded_for, trusted) == expected


@pytest.mark.parametrize(("peer", "forwarded_for", "expected"), CASES)
def test_same_answer_as_capture(peer: str, forwarded_for: str, expected: str) -> None:
    ours = network.client_address(peer, forwarded_for, network.parse_trusted_proxies(TRUSTED))
    theirs = capture_network.client_address(peer, forwarded_for, capture_network.parse_trusted_proxies(TRUSTED))
    assert ours == theirs


def test_no_trusted_proxies_means_the_peer() -> None:
    assert network.client_ip("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"


def test_trusted_proxies_as_a_list_and_bad_entries() -> None:
    assert len(network.parse_trusted_proxies(["127.0.0.1", " 10.0.0.0/8 ", ""])) == 2
    with pytest.raises(ValueError, match="not an IP address or CIDR: 'proxy.local'"):
        network.parse_trusted_proxies("127.0.0.1, proxy.local")


def test_the_resolver_caches_within_bounds_and_answers_like_the_rule() -> None:
    resolver = network.AddressResolver(network.parse_trusted_proxies(TRUSTED))
    for peer, forwarded_for, expected in CASES * 2:
        assert resolver.resolve(peer, forwarded_for)[1] == expected
    assert len(resolver._cache) == len({(p, f) for p, f, _ in CASES})
    long_chain = ", ".join(["198.51.100.1"] * 100)  # a forged, very long header is resolved but never kept
    assert resolver.resolve("127.0.0.1", long_chain)[1] == "198.51.100.1"
    assert ("127.0.0.1", long_chain) not in resolver._cache
    for n in range(network.AddressResolver.MAX_ENTRIES + 10):
        resolver.resolve(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "")
    assert len(resolver._cache) <= network.AddressResolver.MAX_ENTRIES
