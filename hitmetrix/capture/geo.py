"""IP → country and AS organisation, from the offline database bundled with geoip2fast.

We load ``geoip2fast-asn-ipv6.dat.gz`` (MaxMind GeoLite2 country + ASN, IPv4 and
IPv6): it names each network's AS organisation but carries no AS number, so
``asn`` stays 0 and ``as_org`` holds the name. Loading takes ~0.4 s and ~110 MB,
so it happens once per process, at start-up via ``warm_geo()`` (or lazily, under
a lock, on first lookup). geoip2fast keeps its tables in module globals: one
loaded instance per process is all there can be.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any, NamedTuple

from hitmetrix.capture.network import IPAddress

GEO_DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"
_NOT_AN_ORG = {"", "<unknown>", "IANA.ORG"}

log = logging.getLogger(__name__)


class GeoInfo(NamedTuple):
    country: str  # ISO 3166 alpha-2, "" when unknown or not public
    asn: int  # always 0 with the bundled database (it has no AS numbers)
    as_org: str


NO_GEO = GeoInfo("", 0, "")

_lock = threading.Lock()
_db: Any = None
_load_failed = False


def warm_geo() -> None:
    """Load the database now; call at application start-up so no request pays for it. Raises if it cannot."""
    global _db, _load_failed
    with _lock:
        if _db is None:
            from geoip2fast import GeoIP2Fast

            try:
                _db = GeoIP2Fast(verbose=False, geoip2fast_data_file=GEO_DATA_FILE)
            except Exception:
                _load_failed = True
                raise
            _load_failed = False
            log.info("geo database loaded: %s", GEO_DATA_FILE)


def _database() -> Any:
    """The loaded database, loading it on first use; None (logged once) if it cannot be loaded."""
    if _db is None and not _load_failed:
        try:
            warm_geo()
        except Exception:
            log.exception("geo database %s could not be loaded: country and AS are left empty", GEO_DATA_FILE)
    return _db


def lookup_geo(address: IPAddress | None) -> GeoInfo:
    """Country and AS organisation of a public address; ``NO_GEO`` for private, loopback or unknown ones."""
    return NO_GEO if address is None else _lookup(address)


# Cached by address: also saves ipaddress's slow ``is_global`` test for returning visitors.
@lru_cache(maxsize=65536)
def _lookup(address: IPAddress) -> GeoInfo:
    if not address.is_global:
        return NO_GEO
    database = _database()
    if database is None:
        return NO_GEO
    result = database.lookup(str(address))
    if result.is_private:
        return NO_GEO
    country = result.country_code if len(result.country_code) == 2 and result.country_code != "--" else ""
    as_org = "" if result.asn_name in _NOT_AN_ORG else result.asn_name
    return GeoInfo(country, 0, as_org)
