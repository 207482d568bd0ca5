"""Which hosts the asset fetcher may connect to: a project's allowed origins, and the addresses behind them.

A recording is hostile input (anyone with the public key can send one), so
the URLs it names decide nothing by themselves: a URL is fetched only when its
origin (scheme, host, port) is exactly one of the project's allowed origins,
and only from addresses that are public, unless the allowed origin names a
non-public address itself (an IP literal such as ``http://127.0.0.1:8080``, or
``localhost``, which means loopback by definition). A public name that resolves
to a private, loopback, link-local or reserved address is refused, so a DNS
record cannot turn the fetcher against the dashboard's own network. The
fetcher connects to the address checked here, never to a second resolution.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# host, port → the addresses it resolves to (as strings); tests inject their own.
Resolver = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The fetcher may not fetch this URL; the message says why, in words for the replay's notice."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lower-case ASCII (IDNA), IPv6 without brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS[self.scheme]
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def literal(self) -> IpAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) URL, or None for anything else (other schemes, user names, bad ports)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        hostname = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not hostname or parts.username is not None:
        return None
    try:
        host = hostname.encode("idna").decode("ascii") if not hostname.isascii() else hostname.lower()
    except UnicodeError:
        return None
    return Origin(parts.scheme, host, port if port is not None else DEFAULT_PORTS[parts.scheme])


def allowed_origins(texts: Iterable[str]) -> frozenset[Origin]:
    """A project's allowed origins (``scheme://host[:port]``) as origins; anything that is no origin allows nothing."""
    out = set()
    for text in texts:
        parts = urlsplit(text.strip())
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            continue
        origin = origin_of(text)
        if origin is not None:
            out.add(origin)
    return frozenset(out)


RESOLVE_TIMEOUT_S = 5.0


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to, within ``RESOLVE_TIMEOUT_S``.

    ``getaddrinfo`` cannot be given a time limit, so it runs in a daemon thread that is left behind when
    it takes too long (the fetch goes on without it and is refused).
    """
    answer: list[list[tuple[Any, ...]] | BaseException] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            answer.append(exc)
        done.set()

    threading.Thread(target=resolve, name="hitmetrix-asset-dns", daemon=True).start()
    if not done.wait(RESOLVE_TIMEOUT_S):
        raise Refused(f"could not resolve {host} within {RESOLVE_TIMEOUT_S:g} s")
    infos = answer[0]
    if isinstance(infos, BaseException):
        raise Refused(f"could not resolve {host}: {infos}")
    out: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in out:
            out.append(address)
    return out


def is_public(address: IpAddress) -> bool:
    """Reachable on the public internet: not private, loopback, link-local, shared, reserved or multicast.

    IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by that address; Teredo never passes.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return is_public(address.sixtofour) and address.is_global
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


def _names_loopback(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def connectable_addresses(origin: Origin, resolver: Resolver) -> list[IpAddress]:
    """The addresses the fetcher may connect to for ``origin`` (an allowed one); Refused if there are none."""
    literal = origin.literal
    if literal is not None:
        # The allowed origin names this address itself: private is fine, "any address" and multicast never are.
        if literal.is_unspecified or literal.is_multicast:
            raise Refused(f"{literal} is not an address to fetch from")
        return [literal]
    resolved: list[IpAddress] = []
    for text in resolver(origin.host, origin.port):
        try:
            resolved.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if not resolved:
        raise Refused(f"{origin.host} resolves to no address")
    if _names_loopback(origin.host):
        usable = [a for a in resolved if a.is_loopback]
    else:
        usable = [a for a in resolved if is_public(a)]
    if not usable:
        shown = ", ".join(str(a) for a in resolved[:4])
        raise Refused(f"{origin.host} resolves only to private or reserved addresses ({shown})")
    return usable
