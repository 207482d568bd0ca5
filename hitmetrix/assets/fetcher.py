"""Fetch one asset (a stylesheet, image or font) from a project's allowed origins, safely.

The rules, each a refusal with a reason (``Refused``) rather than a fetch:
http and https only; the URL's origin must be one of the allowed origins
exactly; the host is resolved here and the connection goes to the address that
passed ``origin.connectable_addresses`` (so no second DNS answer can point
it elsewhere); redirects are followed by hand, at most ``MAX_REDIRECTS``, each
checked like the first URL; a body over ``MAX_ASSET_BYTES`` (after decoding), a
connection slower than ``CONNECT_TIMEOUT_S`` or a whole fetch slower than
``TOTAL_TIMEOUT_S`` is given up; only CSS, images and fonts are kept, never
HTML or script (also when a "stylesheet" or "image" is really an HTML page).
At most ``PER_ORIGIN_CONCURRENCY`` fetches go to one origin at a time, and
``GLOBAL_CONCURRENCY`` in all. No cookies are kept and no Referer is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.cookiejar
import re
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from hitmetrix.assets.origin import (
    IpAddress,
    Origin,
    Refused,
    Resolver,
    connectable_addresses,
    origin_of,
    system_resolver,
)

MAX_ASSET_BYTES = 5 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 10.0
MAX_REDIRECTS = 3
PER_ORIGIN_CONCURRENCY = 4
GLOBAL_CONCURRENCY = 8
MAX_URL_CHARS = 2048
USER_AGENT = "Hitmetrix-AssetFetcher/1 (replay asset capture)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Fonts are often served as application/octet-stream: accepted only with a font file's extension.
FONT_EXTENSIONS = {
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
}
_FONT_APPLICATION_TYPES = ("application/font-", "application/x-font-")
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")  # a media subtype: it is served back as Content-Type
# How HTML starts (the WHATWG sniffing patterns): such a body is never kept, whatever its Content-Type says.
_HTML_STARTS = tuple(
    f"<{tag}".encode()
    for tag in (
        "!doctype html",
        "html",
        "head",
        "script",
        "iframe",
        "h1",
        "div",
        "font",
        "table",
        "a",
        "style",
        "title",
        "b",
        "body",
        "br",
        "p",
        "!--",
        "?xml",
        "svg",
        "object",
        "embed",
        "form",
        "meta",
        "base",
    )
)


@dataclass(frozen=True)
class Fetched:
    url: str  # what was asked for
    final_url: str  # where the body came from, after redirects (relative URLs in CSS resolve against it)
    content_type: str  # normalised: "text/css", "image/png", "font/woff2"…
    body: bytes


def asset_type(content_type: str, url: str) -> str | None:
    """The type to keep the asset as, or None when it is no stylesheet, image or font."""
    main = content_type.split(";", 1)[0].strip().lower()
    if main == "text/css":
        return main
    kind, _, subtype = main.partition("/")
    if kind in ("image", "font") and _TOKEN.match(subtype):
        return main
    if (main.startswith(_FONT_APPLICATION_TYPES) and _TOKEN.match(subtype)) or main == "application/vnd.ms-fontobject":
        return main
    if main in ("application/octet-stream", "binary/octet-stream", ""):
        path = urlsplit(url).path.lower()
        for extension, kind in FONT_EXTENSIONS.items():
            if path.endswith(extension):
                return kind
    return None


def looks_like_html(body: bytes, content_type: str) -> bool:
    """Would a browser that sniffed take this body for HTML (or, for an SVG, for an HTML page)?"""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    if content_type == "image/svg+xml":  # an SVG is markup: refuse only what is plainly an HTML page
        return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script"))
    if not head.startswith(b"<"):
        return False
    for start in _HTML_STARTS:
        if head.startswith(start) and head[len(start) : len(start) + 1] in (b" ", b">", b"\t", b"\n", b"\r", b"/", b""):
            return True
    return False


class AssetFetcher:
    """Thread-safe; one per node. ``resolver`` and ``transport`` are injectable for tests."""

    def __init__(
        self,
        *,
        resolver: Resolver = system_resolver,
        max_asset_bytes: int = MAX_ASSET_BYTES,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
        max_redirects: int = MAX_REDIRECTS,
        per_origin_concurrency: int = PER_ORIGIN_CONCURRENCY,
        global_concurrency: int = GLOBAL_CONCURRENCY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.resolver = resolver
        self.max_asset_bytes = max_asset_bytes
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_redirects = max_redirects
        self.per_origin_concurrency = per_origin_concurrency
        self._global_slots = threading.BoundedSemaphore(global_concurrency)
        self._origin_slots: dict[Origin, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self._transport = transport
        self._client: httpx.Client | None = None  # made on first use: building a runtime opens nothing

    def _http(self) -> httpx.Client:
        with self._slots_lock:
            if self._client is None:
                # No cookie is ever kept: one site's cookies must not reach another's request.
                no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
                self._client = httpx.Client(
                    # No keep-alive: a pooled TLS connection is keyed by address, and reusing one made for
                    # another host name at the same address would skip that name's certificate check.
                    transport=self._transport
                    or httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0), retries=0),
                    follow_redirects=False,
                    trust_env=False,  # no proxy or netrc from the environment
                    cookies=no_cookies,
                    headers={"User-Agent": USER_AGENT, "Accept": "text/css,image/*,font/*;q=0.9,*/*;q=0.1"},
                )
            return self._client

    def close(self) -> None:
        with self._slots_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def fetch(self, url: str, allowed: Collection[Origin]) -> Fetched:
        """The asset at ``url``, from one of the ``allowed`` origins; Refused (with the reason) otherwise."""
        deadline = time.monotonic() + self.total_timeout_s
        current = url
        for _hop in range(self.max_redirects + 1):
            origin = self._checked_origin(current, allowed)
            addresses = connectable_addresses(origin, self.resolver)
            with self._slot(origin):
                response = self._get(current, origin, addresses, deadline)
            if isinstance(response, str):  # a redirect: its target, checked on the next hop
                current = response
                continue
            return dataclasses.replace(response, url=url)
        raise Refused(f"more than {self.max_redirects} redirects")

    def _checked_origin(self, url: str, allowed: Collection[Origin]) -> Origin:
        if len(url) > MAX_URL_CHARS:
            raise Refused(f"the URL is longer than {MAX_URL_CHARS} characters")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused(f"only http and https URLs are fetched, not {scheme or 'this'}")
        origin = origin_of(url)
        if origin is None:
            raise Refused("not a URL the fetcher can use")
        if origin not in allowed:
            raise Refused(f"{origin} is not one of the project's allowed origins")
        return origin

    @contextlib.contextmanager
    def _slot(self, origin: Origin) -> Iterator[None]:
        with self._slots_lock:
            slots = self._origin_slots.get(origin)
            if slots is None:
                slots = self._origin_slots[origin] = threading.BoundedSemaphore(self.per_origin_concurrency)
        # The origin's slot first: a fetch waiting for a busy origin holds no global slot meanwhile.
        with slots, self._global_slots:
            yield

    def _get(self, url: str, origin: Origin, addresses: list[IpAddress], deadline: float) -> Fetched | str:
        """One request to ``origin`` at one of ``addresses``: the asset, or the next URL of a redirect."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": origin.host_header}
        extensions = {"sni_hostname": origin.host} if origin.scheme == "https" else {}
        last_error: Exception | None = None
        for address in addresses[:3]:
            host = f"[{address}]" if address.version == 6 else str(address)
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise Refused(f"no answer within {self.total_timeout_s:g} s")
            timeout = httpx.Timeout(remaining_s, connect=min(self.connect_timeout_s, remaining_s))
            client = self._http()
            request = client.build_request(
                "GET",
                f"{origin.scheme}://{host}:{origin.port}{target}",
                headers=headers,
                timeout=timeout,
                extensions=extensions,
            )
            try:
                response = client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the next address, if the name has another
                last_error = exc
                continue
            except httpx.TimeoutException:
                raise Refused(f"no answer within {self.total_timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise Refused(f"the request failed: {type(exc).__name__}: {exc}") from None
            try:
                return self._read(url, response, deadline)
            finally:
                response.close()
        raise Refused(f"could not connect to {origin}: {last_error}")

    def _read(self, url: str, response: httpx.Response, deadline: float) -> Fetched | str:
        if response.status_code in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise Refused(f"HTTP {response.status_code} without a Location")
            return urljoin(url, location.strip())
        if response.status_code != 200:
            raise Refused(f"HTTP {response.status_code}")
        kind = asset_type(response.headers.get("content-type", ""), url)
        if kind is None:
            shown = response.headers.get("content-type", "none")[:80]
            raise Refused(f"content type {shown!r} is not a stylesheet, image or font")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_asset_bytes:
            raise Refused(f"larger than {self.max_asset_bytes} bytes ({declared})")
        body = bytearray()
        try:
            for piece in response.iter_bytes():
                body += piece
                if len(body) > self.max_asset_bytes:
                    raise Refused(f"larger than {self.max_asset_bytes} bytes")
                if time.monotonic() > deadline:
                    raise Refused(f"not complete within {self.total_timeout_s:g} s")
        except httpx.TimeoutException:
            raise Refused(f"not complete within {self.total_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise Refused(f"the response broke off: {type(exc).__name__}: {exc}") from None
        data = bytes(body)
        if looks_like_html(data, kind):
            raise Refused(f"the body is an HTML page, not {kind}")
        return Fetched(url=url, final_url=url, content_type=kind, body=data)  # ``fetch`` sets the asked-for url
