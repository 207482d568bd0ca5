"""The few request facts the SDK needs, read from an ASGI scope, a WSGI environ, or a framework request object.

``request_facts`` accepts what a host has at hand where it calls ``track_auth``: an ASGI scope, a WSGI environ,
a Starlette / FastAPI ``Request`` (``.scope``), a Flask / Werkzeug request (``.environ``) or a Django
``HttpRequest`` (``.META`` is the WSGI environ).
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Where a host may put the signed-in user's id for the default ``user_of`` (see ``set_user``), and the route template
# for the default ``route_of``, in the ASGI scope or the WSGI environ.
USER_KEY = "hitmetrix.user_id"
ROUTE_KEY = "hitmetrix.route"


class Facts(NamedTuple):
    peer: str
    forwarded_for: str
    user_agent: str
    cookie: str
    referrer: str


NO_FACTS = Facts("", "", "", "", "")


def asgi_facts(scope: Any) -> Facts:
    user_agent = cookie = forwarded_for = referrer = b""
    for name, value in scope.get("headers") or ():
        if name == b"user-agent":
            user_agent = value
        elif name == b"cookie":
            cookie = cookie + b"; " + value if cookie else value
        elif name == b"x-forwarded-for":
            forwarded_for = forwarded_for + b", " + value if forwarded_for else value
        elif name == b"referer":
            referrer = value
    client = scope.get("client")
    return Facts(
        client[0] if client else "",
        forwarded_for.decode("latin-1"),
        user_agent.decode("latin-1"),
        cookie.decode("latin-1"),
        referrer.decode("latin-1"),
    )


def wsgi_facts(environ: Any) -> Facts:
    get = environ.get
    return Facts(
        get("REMOTE_ADDR") or "",
        get("HTTP_X_FORWARDED_FOR") or "",
        get("HTTP_USER_AGENT") or "",
        get("HTTP_COOKIE") or "",
        get("HTTP_REFERER") or "",
    )


def native(request: Any) -> tuple[str, Any]:
    """("asgi", scope) or ("wsgi", environ) for any supported request object; ("", None) when unknown."""
    if request is None:
        return "", None
    for attribute, kind in (("scope", "asgi"), ("environ", "wsgi"), ("META", "wsgi")):
        inner = getattr(request, attribute, None)
        if isinstance(inner, dict):
            return kind, inner
    if isinstance(request, dict):
        if "REQUEST_METHOD" in request:
            return "wsgi", request
        if request.get("type") in ("http", "websocket"):
            return "asgi", request
    return "", None


def request_facts(request: Any) -> Facts:
    kind, inner = native(request)
    if kind == "asgi":
        return asgi_facts(inner)
    if kind == "wsgi":
        return wsgi_facts(inner)
    return NO_FACTS


def set_user(request: Any, user_id: str | int | None) -> None:
    """Tell the middleware who is signed in on this request (read by the default ``user_of``)."""
    _kind, inner = native(request)
    if inner is not None:
        inner[USER_KEY] = "" if user_id is None else str(user_id)


def default_asgi_user(scope: Any) -> str:
    """``set_user``'s value, else an authenticated Starlette ``scope["user"]``'s identity."""
    user_id = scope.get(USER_KEY)
    if user_id:
        return str(user_id)
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    for attribute in ("identity", "display_name"):
        try:
            value = getattr(user, attribute, "")
        except NotImplementedError:  # Starlette's BaseUser leaves both to subclasses
            continue
        if value:
            return str(value)
    return ""


def default_wsgi_user(environ: Any) -> str:
    """``set_user``'s value, else REMOTE_USER (set by the web server's own authentication)."""
    return str(environ.get(USER_KEY) or environ.get("REMOTE_USER") or "")
