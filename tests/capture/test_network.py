"""hitmetrix/capture/network.py: real client address and IP anonymisation."""

from __future__ import annotations

import ipaddress

import pytest

from hitmetrix.capture.network import anonymise_ip, client_address, parse_ip, parse_trusted_proxies

TRUSTED = parse_trusted_proxies("10.0.0.0/8, 192.0.2.1, 2001:db8::/32")


def test_parse_trusted_proxies() -> None:
    assert [str(n) for n in TRUSTED] == ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]
    assert parse_trusted_proxies("") == ()
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_trusted_proxies("10.0.0.1, not-an-ip")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7:5123 ", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    address = parse_ip(text)
    assert (str(address) if address else None) == expected


def test_peer_without_trusted_proxies() -> None:
    assert str(client_address("203.0.113.7", "1.2.3.4", ())) == "203.0.113.7"
    assert client_address("", "", ()) is None


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    assert str(client_address("203.0.113.7", "8.8.8.8", TRUSTED)) == "203.0.113.7"


def test_trusted_proxy_uses_rightmost_untrusted_hop() -> None:
    # The client wrote "6.6.6.6" itself; the proxy 10.1.1.1 appended the address it saw.
    assert str(client_address("10.0.0.5", "6.6.6.6, 198.51.100.9, 10.1.1.1", TRUSTED)) == "198.51.100.9"
    assert str(client_address("192.0.2.1", "198.51.100.9", TRUSTED)) == "198.51.100.9"
    assert str(client_address("2001:db8::5", "2001:4860::1", TRUSTED)) == "2001:4860::1"


def test_trusted_proxy_without_header_or_all_trusted() -> None:
    assert str(client_address("10.0.0.5", "", TRUSTED)) == "10.0.0.5"
    assert str(client_address("10.0.0.5", "10.0.0.9, 10.0.0.8", TRUSTED)) == "10.0.0.9"


def test_garbage_in_forwarded_for_stops_the_walk() -> None:
    assert str(client_address("10.0.0.5", "198.51.100.9, garbage, 10.0.0.8", TRUSTED)) == "10.0.0.8"


V4 = ipaddress.ip_address("203.0.113.77")
V6 = ipaddress.ip_address("2001:db8:abcd:1234::99")


def test_anonymise_none_keeps_the_address() -> None:
    assert anonymise_ip(V4, "none", "k") == "203.0.113.77"
    assert anonymise_ip(V6, "none", "k") == "2001:db8:abcd:1234::99"
    assert anonymise_ip(None, "none", "k") == ""


def test_anonymise_truncate() -> None:
    assert anonymise_ip(V4, "truncate", "k") == "203.0.113.0"
    assert anonymise_ip(V6, "truncate", "k") == "2001:db8:abcd::"


def test_unknown_mode_truncates() -> None:
    assert anonymise_ip(V4, "bogus", "k") == "203.0.113.0"


def test_anonymise_hash() -> None:
    for address in (V4, V6):
        hashed = anonymise_ip(address, "hash", "key-a")
        assert len(hashed) == 32 and int(hashed, 16) >= 0
        assert str(address) not in hashed
        assert anonymise_ip(address, "hash", "key-a") == hashed  # stable per key
        assert anonymise_ip(address, "hash", "key-b") != hashed  # differs across keys
    assert anonymise_ip(V4, "hash", "key-a") != anonymise_ip(ipaddress.ip_address("203.0.113.78"), "hash", "key-a")
