"""Who is asking: authentication and project access for every dashboard page and API route.

Three kinds of caller. A signed-in user: cookie ``hm_session``, a
server-side session row, scopes read and write, CSRF-checked on every
state-changing request. A personal API token (``Authorization: Bearer
hm_pat_…``) that acts as its user with the token's scope. And the data
directory's local admin token (the CLI's), which sees every project. Users see
exactly the projects they are members of; anything else answers 404, as if it
did not exist.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.store.web_sessions import SESSION_MAX_AGE, session_for
from hitmetrix.web import paths  # noqa: F401 - bounds every {id:int} in the routes built after this import
from hitmetrix.web.csrf import SAFE_METHODS, is_https, origin_ok, session_csrf_ok
from hitmetrix.web.render import error_page

SESSION_COOKIE = "hm_session"
READ_WRITE = frozenset({"read", "write"})
_PRINCIPAL_KEY = "hitmetrix.principal"
CSRF_FAILED = "CSRF check failed: the request did not carry this session's CSRF token. Reload the page and try again."
CROSS_ORIGIN = "cross-origin request refused: state-changing requests must come from the dashboard itself"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: int | None  # None for the local admin token
    email: str
    scopes: frozenset[str]  # subset of {"read", "write"}
    via: str  # "session" (cookie), "token" (personal API token) or "local" (data directory's admin token)
    project_ids: frozenset[int] | None  # projects this caller may see; None means all
    csrf_token: str | None = None  # for cookie sessions: must accompany state-changing requests
    admin: bool = False  # manages users; sees projects through memberships like everyone else

    def can_access(self, project_id: int) -> bool:
        return self.project_ids is None or project_id in self.project_ids


def now_of(runtime: Runtime) -> dt.datetime:
    return dt.datetime.fromtimestamp(runtime.clock(), dt.UTC)


async def authenticate(request: Request, runtime: Runtime) -> Principal | None:
    """The caller, from the bearer token when one is sent, else from the session cookie (once per request)."""
    if _PRINCIPAL_KEY not in request.scope:
        request.scope[_PRINCIPAL_KEY] = _authenticate(request, runtime)
    principal: Principal | None = request.scope[_PRINCIPAL_KEY]
    return principal


def _authenticate(request: Request, runtime: Runtime) -> Principal | None:
    header = request.headers.get("authorization")
    if header is not None:  # a bad Authorization header never falls back to the cookie
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if hmac.compare_digest(token.encode(), runtime.admin_token.encode()):
            return Principal(None, "local-admin", READ_WRITE, "local", None, admin=True)
        if not token.startswith(accounts.API_TOKEN_PREFIX):
            return None
        api_token = accounts.api_token(runtime.meta, token, now_of(runtime))
        if api_token is None:
            return None
        scopes = READ_WRITE if api_token.scope == "write" else frozenset({"read"})
        return _user_principal(runtime, api_token.user_id, scopes, "token", None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session = session_for(runtime.meta, cookie, now_of(runtime))
    if session is None:
        return None
    return _user_principal(runtime, session.user_id, READ_WRITE, "session", session.csrf_token)


def _user_principal(
    runtime: Runtime, user_id: int, scopes: frozenset[str], via: str, csrf_token: str | None
) -> Principal | None:
    user = accounts.user_by_id(runtime.meta, user_id)
    if user is None:
        return None
    project_ids = frozenset(accounts.project_ids_of(runtime.meta, user.id))
    return Principal(user.id, user.email, scopes, via, project_ids, csrf_token, admin=user.is_admin)


def can_manage(principal: Principal, runtime: Runtime, project_id: int) -> bool:
    """May change the project's settings and members: its owners, admins who are members, the local admin."""
    if not principal.can_access(project_id):
        return False
    if principal.via == "local" or principal.admin:
        return True
    assert principal.user_id is not None
    return accounts.role_in(runtime.meta, project_id, principal.user_id) == "owner"


async def require_api(
    request: Request, runtime: Runtime, project_id: int | None = None, *, write: bool = False
) -> Principal | Response:
    """The caller of an API route, or the JSON error to answer (401 / 403 / 404).

    Any method other than GET/HEAD/OPTIONS needs the write scope, and with a
    cookie session also the ``X-CSRF-Token`` header and no foreign Origin.
    """
    principal = await authenticate(request, runtime)
    if principal is None:
        return JSONResponse(
            {"error": "authentication required: sign in, or send Authorization: Bearer <token>"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    unsafe = request.method not in SAFE_METHODS
    if unsafe and principal.via == "session":
        if not origin_ok(request):
            return JSONResponse({"error": CROSS_ORIGIN}, 403)
        if not await session_csrf_ok(request, principal.csrf_token, allow_form=False):
            return JSONResponse({"error": CSRF_FAILED + " (send it in the X-CSRF-Token header)"}, 403)
    if (write or unsafe) and "write" not in principal.scopes:
        return JSONResponse({"error": "this token may only read: create a token with scope 'write'"}, 403)
    if project_id is not None and not principal.can_access(project_id):
        return JSONResponse({"error": "no such project"}, 404)
    return principal


async def require_page(request: Request, runtime: Runtime, project_id: int | None = None) -> Principal | Response:
    """The signed-in user of a dashboard page, or a redirect to sign in (or an HTML 403 / 404)."""
    principal = await authenticate(request, runtime)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), 303)
    if request.method not in SAFE_METHODS:
        if principal.via == "session":
            if not origin_ok(request):
                return error_page(request, 403, CROSS_ORIGIN, principal)
            if not await session_csrf_ok(request, principal.csrf_token, allow_form=True):
                return error_page(request, 403, CSRF_FAILED, principal)
        if "write" not in principal.scopes:
            return error_page(request, 403, "This token may only read.", principal)
    if project_id is not None and not principal.can_access(project_id):
        return error_page(request, 404, "There is no such project, or you are not a member of it.", principal)
    return principal


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="lax")
