"""Who sent a request: the trusted-proxy rule of the server's capture (hitmetrix/capture/network.py), standard
library only so that a host application imports the SDK without the server's dependencies.

The client is the socket peer, unless the peer is a trusted proxy: then it is the right-most X-Forwarded-For entry
that is not itself a trusted proxy (entries left of it were written by the client and may be forged). An
unparsable hop stops the walk at the last good one. tests/sdk/test_network.py checks that both implementations
agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(spec: str | Sequence[str]) -> tuple[IPNetwork, ...]:
    """``"10.0.0.1, 172.16.0.0/12"`` (or a list of such entries) → networks; a bad entry raises ValueError."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks: list[IPNetwork] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: not an IP address or CIDR: {item!r}") from None
    return tuple(networks)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a socket peer or an X-Forwarded-For entry; IPv4-mapped IPv6 becomes IPv4."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """The end client's address by the rule in the module docstring; None when the peer is not an address."""
    address = parse_ip(peer) if peer else None
    if address is None or not forwarded_for or not trusted or not is_trusted(address, trusted):
        return address
    for entry in reversed(forwarded_for.split(",")):
        hop = parse_ip(entry)
        if hop is None:
            break
        address = hop
        if not is_trusted(hop, trusted):
            break
    return address


def client_ip(peer: str, forwarded_for: str, trusted: Sequence[IPNetwork]) -> str:
    """``client_address`` as the text the wire carries ("" when unknown)."""
    address = client_address(peer, forwarded_for, trusted)
    return "" if address is None else str(address)


class AddressResolver:
    """``client_address`` with a bounded cache: a site sees the same (peer, X-Forwarded-For) pairs again and again,
    and parsing them costs microseconds on every request. Shared by the request path and the sender thread."""

    MAX_ENTRIES = 4096
    MAX_CACHED_HEADER_CHARS = 256  # longer (odd, or forged) chains are resolved each time, never kept

    def __init__(self, trusted: Sequence[IPNetwork]) -> None:
        self.trusted = tuple(trusted)
        self._cache: dict[tuple[str, str], tuple[IPAddress | None, str]] = {}

    def resolve(self, peer: str, forwarded_for: str) -> tuple[IPAddress | None, str]:
        """(the address or None, its text or "")."""
        key = (peer, forwarded_for)
        found = self._cache.get(key)
        if found is not None:
            return found
        address = client_address(peer, forwarded_for, self.trusted)
        found = (address, "" if address is None else str(address))
        if len(forwarded_for) <= self.MAX_CACHED_HEADER_CHARS:
            cache = self._cache
            if len(cache) >= self.MAX_ENTRIES:
                cache.clear()  # a crude bound, but O(1) on the request path and refilled by the next requests
            cache[key] = found
        return found
