"""Security headers for dashboard responses: Content-Security-Policy and friends.

Every HTML response of the dashboard gets a strict CSP (no inline scripts:
page JS is served from /static; images, fonts and media only from the dashboard
itself), framing is refused and nothing is sniffed. Responses that may hold data
(HTML pages, the JSON API) are not cached unless the handler said otherwise. The
demo site and the tracker script are the visited site's, not the dashboard's,
and are left alone.

The replay page is the one page that shows recorded content, and sets its own
headers (``replay_page_headers``): its CSP also allows the project's allowed
origins for images, fonts, media and stylesheets, and nothing else, and it sends
no Referer at all. Its replay iframe is an about:blank document, which inherits
both from the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a CSP host-source may be here: scheme, a DNS name or IPv4 address (ASCII), an optional port.
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_CSP_ORIGIN = re.compile(rf"^https?://{_DNS_LABEL}(?:\.{_DNS_LABEL})*(?::[0-9]{{1,5}})?$")


def content_security_policy(media_origins: Iterable[str] = (), frame_ancestors: str = "'none'") -> str:
    """The dashboard's CSP; ``media_origins`` (checked with ``replay_origins``) may serve images, fonts,
    media and stylesheets too. ``data:`` and ``blob:`` are for rrweb-player's cursor and inlined media."""
    extra = "".join(f" {origin}" for origin in media_origins)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            f"style-src 'self' 'unsafe-inline'{extra}",
            f"img-src 'self' data: blob:{extra}",
            f"font-src 'self' data:{extra}",
            f"media-src 'self' data: blob:{extra}",
            "connect-src 'self'",
            "frame-src 'self'",
            "child-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def replay_origins(allowed_origins: Iterable[str]) -> list[str]:
    """A project's allowed origins that a replay may load from, as CSP host-sources and URL origins.

    Only ``http(s)://host[:port]`` survives, lower-case, with international names in punycode.
    Anything else (a wildcard, an IPv6 literal, which CSP cannot name, or text that is no origin)
    is left out rather than let into the CSP header, where it could widen or break it.
    """
    out: list[str] = []
    for origin in allowed_origins:
        try:
            parts = urlsplit(origin.strip())
            host = (parts.hostname or "").encode("idna").decode("ascii")
            port = parts.port
        except (ValueError, UnicodeError):
            continue
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            continue
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        candidate = f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")
        if _CSP_ORIGIN.match(candidate) and candidate not in out:
            out.append(candidate)
    return out


def replay_page_headers(media_origins: list[str]) -> dict[str, str]:
    """Headers of the replay page; ``media_origins`` must come from ``replay_origins``."""
    return {
        # The alert page embeds the replay at the attack's moment: framing by the dashboard itself only.
        "content-security-policy": content_security_policy(media_origins, frame_ancestors="'self'"),
        "x-frame-options": "SAMEORIGIN",
        # No request of the page or of its replay (which inherits the policy) names the dashboard. Chromium
        # ignores the policy for URLs of inline CSS: the replay's sanitiser gives those their own (sanitise.ts).
        "referrer-policy": "no-referrer",
    }


CONTENT_SECURITY_POLICY = content_security_policy()
HTML_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
NO_STORE_PREFIXES = ("/api/v1/",)
CAPTURE_PATH = "/api/v1/batch"


def _untouched(path: str) -> bool:
    return path == "/demo" or path.startswith("/demo/") or path == "/hm.js"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _untouched(scope["path"]):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                is_html = headers.get("content-type", "").startswith("text/html")
                if is_html:
                    for name, value in HTML_HEADERS.items():
                        headers.setdefault(name, value)
                else:
                    headers.setdefault("x-content-type-options", "nosniff")
                data_bearing = is_html or (path.startswith(NO_STORE_PREFIXES) and path != CAPTURE_PATH)
                if data_bearing and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
