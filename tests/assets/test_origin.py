"""Allowed origins and the addresses the fetcher may connect to."""

from __future__ import annotations

import ipaddress

import pytest

from hitmetrix.assets.origin import Origin, Refused, allowed_origins, connectable_addresses, is_public, origin_of


def test_origins_compare_exactly_by_scheme_host_and_port() -> None:
    assert origin_of("https://WWW.Example.com/a/b?c") == Origin("https", "www.example.com", 443)
    assert origin_of("https://www.example.com:443/") == origin_of("https://www.example.com")
    assert origin_of("http://www.example.com:8080/x") == Origin("http", "www.example.com", 8080)
    assert origin_of("http://[::1]:81/") == Origin("http", "::1", 81)
    assert str(Origin("http", "::1", 81)) == "http://[::1]:81"
    assert origin_of("http://bücher.example/") == Origin("http", "xn--bcher-kva.example", 80)
    for bad in ("ftp://a/", "http://user@a/", "http://a:99999/", "javascript:alert(1)", "//a/", "http:///x"):
        assert origin_of(bad) is None, bad
    allowed = allowed_origins(["https://www.example.com", "http://127.0.0.1:8080/", "https://a.example/path", "*"])
    assert allowed == {Origin("https", "www.example.com", 443), Origin("http", "127.0.0.1", 8080)}


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "ff02::1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_connectable_addresses() -> None:
    def resolver(answers: list[str]):  # type: ignore[no-untyped-def]
        return lambda host, port: answers

    site = Origin("https", "www.example.com", 443)
    mixed = connectable_addresses(site, resolver(["10.0.0.1", "93.184.215.14", "not an ip"]))
    assert mixed == [ipaddress.ip_address("93.184.215.14")], "only the public addresses of a mixed answer"
    with pytest.raises(Refused, match="only to private or reserved addresses"):
        connectable_addresses(site, resolver(["127.0.0.1", "::1"]))
    with pytest.raises(Refused, match="resolves to no address"):
        connectable_addresses(site, resolver([]))
    named = Origin("http", "10.0.0.5", 8080)
    assert connectable_addresses(named, resolver(["93.184.215.14"])) == [ipaddress.ip_address("10.0.0.5")]
    local = Origin("http", "localhost", 3000)
    assert connectable_addresses(local, resolver(["127.0.0.1", "10.0.0.1"])) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(Refused):
        connectable_addresses(Origin("http", "::", 80), resolver([]))
