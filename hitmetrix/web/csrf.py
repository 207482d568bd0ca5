"""Cross-site request forgery defences for cookie-authenticated requests.

Three layers: a state-changing request whose ``Origin`` is present must come
from the dashboard's own origin; a signed-in session's requests must echo the
session's CSRF secret (form field ``csrf_token`` or header ``X-CSRF-Token``);
and the sign-in and setup forms, which have no session yet, use a signed
double-submit cookie. Bearer-token requests carry no ambient credentials and
need none of this.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qsl

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_CSRF_COOKIE = "hm_login_csrf"
LOGIN_CSRF_MAX_AGE_S = 2 * 3600
MAX_FORM_BYTES = 64 * 1024
_FORM_KEY = "hitmetrix.form"


def is_https(request: Request) -> bool:
    """HTTPS as the client sees it: uvicorn takes X-Forwarded-Proto from trusted proxies only."""
    return request.url.scheme == "https"


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def origin_ok(request: Request) -> bool:
    """False when the request names an Origin (browsers do on cross-site POSTs) that is not ours."""
    origin = request.headers.get("origin")
    return origin is None or hmac.compare_digest(origin.encode(), own_origin(request).encode())


def tokens_match(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form body (read once per request, at most MAX_FORM_BYTES); {} for anything else."""
    cached = request.scope.get(_FORM_KEY)
    if cached is not None:
        return dict(cached)
    form: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                body = b""
                break
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.scope[_FORM_KEY] = form
    return dict(form)


async def session_csrf_ok(request: Request, expected: str | None, *, allow_form: bool) -> bool:
    """Does this cookie-authenticated request echo its session's CSRF secret?"""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and allow_form:
        sent = (await read_form(request)).get(CSRF_FIELD)
    return tokens_match(sent, expected)


class LoginCsrf:
    """Signed double-submit token for the forms used before a session exists (sign-in, setup).

    The cookie and the hidden field carry the same signed random value; a
    cross-site page can make the browser send the cookie but cannot read it to
    fill the field, and cannot mint a valid one without the key.
    """

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), b"hitmetrix login csrf", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="hitmetrix.login-csrf")

    def _valid(self, token: str | None) -> bool:
        if not token:
            return False
        try:
            self._serializer.loads(token, max_age=LOGIN_CSRF_MAX_AGE_S)
        except BadSignature:
            return False
        return True

    def token_for(self, request: Request) -> str:
        """The request's token if it still holds, else a fresh one (set it with ``set_cookie``)."""
        current = request.cookies.get(LOGIN_CSRF_COOKIE)
        if current is not None and self._valid(current):
            return current
        return str(self._serializer.dumps(secrets.token_urlsafe(16)))

    def set_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=LOGIN_CSRF_MAX_AGE_S,
            path="/",
            secure=is_https(request),
            httponly=True,
            samesite="lax",
        )

    async def check(self, request: Request) -> bool:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        sent = (await read_form(request)).get(CSRF_FIELD)
        return self._valid(cookie) and tokens_match(sent, cookie) and origin_ok(request)


def login_csrf_of(request: Request) -> LoginCsrf:
    """The app's pre-session CSRF signer (sign-in, setup, invitation and reset forms), keyed by the
    data directory's admin token so tokens survive a restart."""
    state = request.app.state
    signer: LoginCsrf | None = getattr(state, "login_csrf", None)
    if signer is None:
        signer = state.login_csrf = LoginCsrf(state.runtime.admin_token)
    return signer
