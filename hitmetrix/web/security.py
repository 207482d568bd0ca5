"""Security headers for dashboard responses: Content-Security-Policy and friends.

Every HTML response of the dashboard gets a strict CSP (no inline scripts:
page JS is served from /static), framing is refused and nothing is sniffed.
Responses that may hold data (HTML pages, the JSON API) are not cached unless
the handler said otherwise. The demo site and the tracker script are the
visited site's, not the dashboard's, and are left alone.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        # Replays show the recorded site's own images, fonts and media.
        "img-src 'self' data: blob: https: http:",
        "font-src 'self' data: https: http:",
        "media-src 'self' data: blob: https: http:",
        "connect-src 'self'",
        "frame-src 'self'",
        "child-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
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
