"""Client addresses: who really sent a request (behind trusted proxies) and how it is anonymised.

The address used for geo lookup and rate limiting is the real one; only
``anonymise_ip`` output is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

IP_HASH_HEX_CHARS = 32
_IPV4_KEEP_24 = 0xFFFF_FF00
_IPV6_KEEP_48 = ((1 << 48) - 1) << 80


def parse_trusted_proxies(spec: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.1, 172.16.0.0/12"`` → networks; a bad entry is a start-up error, not a silent skip."""
    networks: list[IPNetwork] = []
    for item in spec.split(","):
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
    """The client's address.

    It is the socket peer, unless the peer is a trusted proxy: then it is the
    right-most X-Forwarded-For entry that is not itself a trusted proxy. Entries
    left of that one were written by the client and may be forged. When the
    chain holds an unparsable entry we stop there and keep the last good hop.
    """
    address = parse_ip(peer) if peer else None
    if address is None or not forwarded_for or not is_trusted(address, trusted):
        return address
    for entry in reversed(forwarded_for.split(",")):
        hop = parse_ip(entry)
        if hop is None:
            break
        address = hop
        if not is_trusted(hop, trusted):
            break
    return address


def anonymise_ip(address: IPAddress | None, mode: str, hash_key: str) -> str:
    """The address as stored for a project: ``none`` keeps it, ``truncate`` zeroes the host part
    (IPv4 /24, IPv6 /48), ``hash`` is HMAC-SHA256 keyed per project (hex, 32 chars).

    Any other mode truncates: an unknown setting must not leak full addresses.
    """
    if address is None:
        return ""
    if mode == "none":
        return str(address)
    if mode == "hash":
        digest = hmac.new(hash_key.encode(), address.packed, hashlib.sha256).hexdigest()
        return digest[:IP_HASH_HEX_CHARS]
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & _IPV4_KEEP_24))
    return str(ipaddress.IPv6Address(int(address) & _IPV6_KEEP_48))
