"""Is a client that claims to be a search crawler really one? Reverse DNS, then a forward check.

A user agent naming Googlebot, Bingbot and the like is taken at its word by no one:
the address's PTR name must end in the crawler's published domain and that name
must resolve back to the address (the method the search engines document). The
answer is cached per (crawler, address) — bounded, least recently used first out,
negative answers for less time — so DNS is asked once per crawler address.

Lookups never run on the event loop: ``CrawlerVerifier`` runs them in a small
thread pool, at most ``MAX_PENDING`` at once (a flood of fake "Googlebot"s from
many addresses cannot queue unbounded work), each bounded by ``timeout_s``. Callers
either read the cache (``status``: "verified" / "unverified" / None when not yet
known, and start a lookup for next time) or await the answer briefly (``verify``).

The resolver is injected: ``SystemResolver`` asks the OS; ``HostsFileResolver``
answers from a hosts-style file (setting ``crawler_dns_file``), for tests and
offline installs, since search engines' DNS is not reachable everywhere. Lines:
``ADDRESS NAME [NAME…]`` (PTR of ADDRESS is the first NAME; each NAME resolves to
ADDRESS), ``PTR ADDRESS NAME`` and ``A NAME ADDRESS`` (one direction only), ``#`` comments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

# crawler name -> (user-agent pattern, PTR domains it is served from)
CRAWLERS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    "googlebot": (
        re.compile(r"googlebot|google-inspectiontool|adsbot-google|mediapartners-google|storebot-google", re.I),
        ("googlebot.com", "google.com", "googleusercontent.com"),
    ),
    "bingbot": (re.compile(r"bingbot|bingpreview|msnbot|adidxbot", re.I), ("search.msn.com",)),
    "applebot": (re.compile(r"applebot", re.I), ("applebot.apple.com",)),
    "yandexbot": (
        re.compile(r"yandex(bot|images|mobilebot|renderresourcesbot)", re.I),
        ("yandex.ru", "yandex.net", "yandex.com"),
    ),
    "baiduspider": (re.compile(r"baiduspider", re.I), ("baidu.com", "baidu.jp")),
    "duckduckbot": (re.compile(r"duckduckbot", re.I), ("duckduckgo.com",)),
    "petalbot": (re.compile(r"petalbot", re.I), ("petalsearch.com", "aspiegel.com")),
    "seznambot": (re.compile(r"seznambot", re.I), ("seznam.cz",)),
}
_ANY_CRAWLER = re.compile("|".join(f"(?:{p.pattern})" for p, _ in CRAWLERS.values()), re.I)

VERIFIED = "verified"
UNVERIFIED = "unverified"
MAX_PENDING = 64
CACHE_ENTRIES = 10_000
VERIFIED_TTL_S = 24 * 3600.0
UNVERIFIED_TTL_S = 3600.0


def claimed_crawler(user_agent: str) -> str:
    """The crawler a user agent claims to be ("googlebot"), or "" (one regex pass for the common no-claim case)."""
    if not user_agent or _ANY_CRAWLER.search(user_agent) is None:
        return ""
    for name, (pattern, _) in CRAWLERS.items():
        if pattern.search(user_agent):
            return name
    return ""


class Resolver(Protocol):
    def reverse(self, address: str) -> str | None: ...  # the PTR name, None when none

    def forward(self, name: str) -> set[str]: ...  # the name's addresses


class SystemResolver:
    """The operating system's resolver (blocking: called in a worker thread)."""

    def reverse(self, address: str) -> str | None:
        try:
            return socket.gethostbyaddr(address)[0]
        except (OSError, UnicodeError):
            return None

    def forward(self, name: str) -> set[str]:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return set()
        return {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos}


class HostsFileResolver:
    """Answers from a hosts-style file (module docstring), re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns = -1
        self._ptr: dict[str, str] = {}
        self._a: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except OSError:
            mtime_ns = 0
        with self._lock:
            if mtime_ns == self._mtime_ns:
                return
            ptr: dict[str, str] = {}
            forward: dict[str, set[str]] = {}
            text = self.path.read_text() if mtime_ns else ""
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0].upper() == "PTR":
                    ptr[_canonical(words[1])] = words[2].lower().rstrip(".")
                elif len(words) >= 3 and words[0].upper() == "A":
                    forward.setdefault(words[1].lower().rstrip("."), set()).add(_canonical(words[2]))
                elif len(words) >= 2:
                    address = _canonical(words[0])
                    ptr.setdefault(address, words[1].lower().rstrip("."))
                    for name in words[1:]:
                        forward.setdefault(name.lower().rstrip("."), set()).add(address)
            self._ptr, self._a, self._mtime_ns = ptr, forward, mtime_ns

    def reverse(self, address: str) -> str | None:
        self._load()
        return self._ptr.get(_canonical(address))

    def forward(self, name: str) -> set[str]:
        self._load()
        return set(self._a.get(name.lower().rstrip("."), ()))


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def check_crawler(resolver: Resolver, crawler: str, address: str) -> bool:
    """True when ``address``'s PTR name lies in ``crawler``'s domains and resolves back to ``address``."""
    domains = CRAWLERS[crawler][1]
    name = resolver.reverse(address)
    if not name:
        return False
    name = name.lower().rstrip(".")
    if not any(name == domain or name.endswith("." + domain) for domain in domains):
        return False
    return _canonical(address) in {_canonical(a) for a in resolver.forward(name)}


class CrawlerVerifier:
    """Cached, bounded, off-loop crawler verification (module docstring)."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        timeout_s: float = 1.0,
        max_entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self.timeout_s = timeout_s
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, bool]] = OrderedDict()
        self._pending: dict[tuple[str, str], concurrent.futures.Future[bool]] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="crawler-dns")
        self.lookups = 0
        self.skipped_busy = 0

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    def status(self, crawler: str, address: str) -> str | None:
        """"verified" / "unverified" when known; else None, and a lookup starts for next time."""
        known = self._cached(crawler, address)
        if known is None:
            self._start(crawler, address)
            return None
        return VERIFIED if known else UNVERIFIED

    async def verify(self, crawler: str, address: str, wait_s: float | None = None) -> str:
        """The answer, waiting at most ``wait_s`` (default ``timeout_s``); "unverified" when not known by then."""
        known = self._cached(crawler, address)
        if known is not None:
            return VERIFIED if known else UNVERIFIED
        future = self._start(crawler, address)
        if future is None:
            return UNVERIFIED
        try:
            ok = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), wait_s or self.timeout_s)
        except TimeoutError:
            return UNVERIFIED
        return VERIFIED if ok else UNVERIFIED

    def label(self, crawler: str, known: str | None) -> str:
        return f"{crawler}:{known or UNVERIFIED}" if crawler else ""

    def _cached(self, crawler: str, address: str) -> bool | None:
        key = (crawler, address)
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires_at, ok = entry
            if self.clock() >= expires_at:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return ok

    def _start(self, crawler: str, address: str) -> concurrent.futures.Future[bool] | None:
        key = (crawler, address)
        with self._lock:
            future = self._pending.get(key)
            if future is not None:
                return future
            if len(self._pending) >= MAX_PENDING:
                self.skipped_busy += 1
                return None
            future = self._pool.submit(self._lookup, crawler, address)
            self._pending[key] = future
            return future

    def _lookup(self, crawler: str, address: str) -> bool:
        self.lookups += 1
        try:
            ok = check_crawler(self.resolver, crawler, address)
        except Exception:  # noqa: BLE001 - a resolver failure is an unverified claim, never a crash
            ok = False
        ttl_s = VERIFIED_TTL_S if ok else UNVERIFIED_TTL_S
        with self._lock:
            self._pending.pop((crawler, address), None)
            self._cache[(crawler, address)] = (self.clock() + ttl_s, ok)
            self._cache.move_to_end((crawler, address))
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return ok

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def verifier_from_settings(dns_file: str, timeout_s: float) -> CrawlerVerifier:
    resolver: Resolver = HostsFileResolver(Path(dns_file)) if dns_file else SystemResolver()
    return CrawlerVerifier(resolver, timeout_s=timeout_s)


_SHARED: dict[tuple[str, float], CrawlerVerifier] = {}
_SHARED_LOCK = threading.Lock()


def shared_verifier(settings: object) -> CrawlerVerifier:
    """One verifier (cache and threads) per resolver setting, shared by the browser and server routes."""
    dns_file = str(getattr(settings, "crawler_dns_file", ""))
    timeout_s = float(getattr(settings, "crawler_dns_timeout_s", 1.0))
    with _SHARED_LOCK:
        verifier = _SHARED.get((dns_file, timeout_s))
        if verifier is None:
            verifier = _SHARED[(dns_file, timeout_s)] = verifier_from_settings(dns_file, timeout_s)
        return verifier
