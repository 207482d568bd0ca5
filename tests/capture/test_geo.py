"""hitmetrix/capture/geo.py against the database bundled with geoip2fast."""

from __future__ import annotations

import ipaddress

import pytest

from hitmetrix.capture import geo
from hitmetrix.capture.geo import NO_GEO, GeoInfo, lookup_geo, warm_geo


def test_public_ipv4() -> None:
    warm_geo()
    # The bundled database names AS organisations but has no AS numbers.
    assert lookup_geo(ipaddress.ip_address("8.8.8.8")) == GeoInfo("US", 0, "GOOGLE")


def test_public_ipv6() -> None:
    assert lookup_geo(ipaddress.ip_address("2001:4860:4860::8888")) == GeoInfo("US", 0, "GOOGLE")


def test_private_loopback_and_missing_addresses_have_no_geo() -> None:
    for text in ("10.1.2.3", "192.168.1.1", "127.0.0.1", "::1", "fe80::1", "100.64.0.1"):
        assert lookup_geo(ipaddress.ip_address(text)) == NO_GEO, text
    assert lookup_geo(None) == NO_GEO


def test_a_database_that_cannot_load_leaves_geo_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geo, "_db", None)
    monkeypatch.setattr(geo, "_load_failed", False)
    monkeypatch.setattr(geo, "GEO_DATA_FILE", "/nonexistent/geo.dat.gz")
    with pytest.raises(Exception, match="nonexistent"):
        geo.warm_geo()
    assert geo._lookup.__wrapped__(ipaddress.ip_address("8.8.4.4")) == NO_GEO
