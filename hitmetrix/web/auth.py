"""Who is asking, and may they: the one guard for every dashboard page and API route.

Three kinds of caller. A signed-in user: cookie ``hm_session``, a
server-side session row, scopes read and write, CSRF-checked on every
state-changing request. A personal API token (``Authorization: Bearer
hm_pat_…``) that acts as its user with the token's scope. And the data
directory's local admin token (the CLI's), which is an owner of every project.

A handler says what it needs with ``@guard(...)``: a signed-in caller, a role
in the path's project (``{project_id}``), replay rights, or being an admin.
The guard answers for it, the same way for pages and the API: signed out → 401
JSON (API) or a redirect to sign in (pages); a project the caller is not a
member of → 404, as if it did not exist; a role too low → 403. Admins manage
users; being one does not make anyone a member of a project. Routes anyone may
call say so with ``@public(why)``. The access matrix test reads both marks
from the route table and fails on a route that has neither.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hitmetrix.capture.network import client_address, parse_trusted_proxies
from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit
from hitmetrix.store.meta import Project
from hitmetrix.store.web_sessions import SESSION_MAX_AGE, session_for
from hitmetrix.web import paths  # noqa: F401 - bounds every {id:int} in the routes built after this import
from hitmetrix.web.csrf import SAFE_METHODS, is_https, origin_ok, session_csrf_ok
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page

SESSION_COOKIE = "hm_session"
READ_WRITE = frozenset({"read", "write"})
_PRINCIPAL_KEY = "hitmetrix.principal"
CSRF_FAILED = "CSRF check failed: the request did not carry this session's CSRF token. Reload the page and try again."
CROSS_ORIGIN = "cross-origin request refused: state-changing requests must come from the dashboard itself"
READ_ONLY = "this token may only read: create a token with scope 'write'"
NO_PROJECT = "There is no such project, or you are not a member of it."
ACCESS_ATTR = "hitmetrix_access"

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, eq=False)
class Principal:
    """An authenticated caller."""

    user_id: int | None  # None for the local admin token
    email: str
    scopes: frozenset[str]  # subset of {"read", "write"}
    via: str  # "session" (cookie), "token" (personal API token) or "local" (data directory's admin token)
    roles: Mapping[int, str] | None  # project id → role; None: owner of every project (the local admin)
    csrf_token: str | None = None  # for cookie sessions: must accompany state-changing requests
    admin: bool = False  # manages users; sees projects through memberships like everyone else
    token_id: int | None = None  # the personal API token used, if any

    @property
    def project_ids(self) -> frozenset[int] | None:
        """Projects this caller may see; None means all."""
        return None if self.roles is None else frozenset(self.roles)

    def can_access(self, project_id: int) -> bool:
        return self.roles is None or project_id in self.roles

    def role_in(self, project_id: int) -> str | None:
        if self.roles is None:
            return "owner"
        return self.roles.get(project_id)

    def has_role(self, project_id: int, least: str) -> bool:
        role = self.role_in(project_id)
        return role is not None and accounts.ROLE_RANK[role] >= accounts.ROLE_RANK[least]


@dataclass(frozen=True)
class Access:
    """What a route asks of its caller; ``guard`` and ``public`` put it on the endpoint for the access matrix."""

    public: bool = False
    why: str = ""  # for a public route: why anyone may call it
    api: bool = False  # answers in JSON (401) rather than pages (redirect to sign in)
    role: str | None = None  # least role in the path's project; None: no project in the path
    admin: bool = False  # only admins
    replay: bool = False  # shows recordings: withheld from viewers when the project says so


def access_of(endpoint: Any) -> Access | None:
    return getattr(endpoint, ACCESS_ATTR, None)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def principal_of(request: Request) -> Principal:
    """The caller the guard let in."""
    principal: Principal = request.state.principal
    return principal


def project_of(request: Request) -> Project:
    """The path's project, loaded by the guard (routes with a role)."""
    project: Project = request.state.project
    return project


def now_of(runtime: Runtime) -> dt.datetime:
    return dt.datetime.fromtimestamp(runtime.clock(), dt.UTC)


# --- who is asking -----------------------------------------------------------------------------------


async def authenticate(request: Request, runtime: Runtime | None = None) -> Principal | None:
    """The caller, from the bearer token when one is sent, else from the session cookie (once per request)."""
    if _PRINCIPAL_KEY not in request.scope:
        found = await run(_authenticate, request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE),
                          runtime or runtime_of(request))
        request.scope[_PRINCIPAL_KEY] = found
    principal: Principal | None = request.scope[_PRINCIPAL_KEY]
    return principal


def _authenticate(header: str | None, cookie: str | None, runtime: Runtime) -> Principal | None:
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
        return _user_principal(runtime, api_token.user_id, scopes, "token", None, api_token.id)
    if not cookie:
        return None
    session = session_for(runtime.meta, cookie, now_of(runtime))
    if session is None:
        return None
    return _user_principal(runtime, session.user_id, READ_WRITE, "session", session.csrf_token, None)


def _user_principal(
    runtime: Runtime, user_id: int, scopes: frozenset[str], via: str, csrf_token: str | None, token_id: int | None
) -> Principal | None:
    user = accounts.user_by_id(runtime.meta, user_id)
    if user is None or not user.active:  # deactivation ends sessions and tokens too; this is the backstop
        return None
    roles = MappingProxyType(accounts.memberships_of(runtime.meta, user.id))
    return Principal(user.id, user.email, scopes, via, roles, csrf_token, admin=user.is_admin, token_id=token_id)


# --- the guard ---------------------------------------------------------------------------------------


def guard(
    role: str | None = None, *, project: bool = False, api: bool = False, admin: bool = False, replay: bool = False
) -> Callable[[Handler], Handler]:
    """Let a handler run only for callers that may: see the module docstring for the answers.

    ``role``: the least role needed in the path's ``{project_id}`` ("viewer", "analyst" or "owner");
    ``project=True`` alone means "viewer". ``api``: JSON answers. ``admin``: admins only.
    ``replay``: the route shows recordings. The handler finds ``principal_of(request)`` and, for
    project routes, ``project_of(request)`` (and ``request.state.role``) filled in.
    """
    if project and role is None:
        role = "viewer"
    if role is not None and role not in accounts.ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")
    if replay and role is None:
        raise ValueError("a replay route names its project")
    access = Access(api=api, role=role, admin=admin, replay=replay)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            refused = await check(request, access)
            if refused is not None:
                return refused
            return await handler(request)

        setattr(endpoint, ACCESS_ATTR, access)
        return endpoint

    return decorate


def public(why: str) -> Callable[[Any], Any]:
    """Mark a route anyone may call (sign-in, capture, health …), saying why; the access matrix lists them."""

    def mark(endpoint: Any) -> Any:
        setattr(endpoint, ACCESS_ATTR, Access(public=True, why=why))
        return endpoint

    return mark


async def check(request: Request, access: Access) -> Response | None:
    """None when the caller may go on; else the answer (401 / redirect, 403, 404)."""
    runtime = runtime_of(request)
    principal = await authenticate(request, runtime)
    if principal is None:
        if access.api:
            return JSONResponse(
                {"error": "authentication required: sign in, or send Authorization: Bearer <token>"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), 303)
    request.state.principal = principal

    def refuse(status_code: int, message: str, page_message: str | None = None) -> Response:
        if access.api:
            return JSONResponse({"error": message}, status_code)
        return error_page(request, status_code, page_message or sentence(message), principal)

    if request.method not in SAFE_METHODS:
        if principal.via == "session":
            if not origin_ok(request):
                return refuse(403, CROSS_ORIGIN, CROSS_ORIGIN)
            if not await session_csrf_ok(request, principal.csrf_token, allow_form=not access.api):
                return refuse(403, CSRF_FAILED + (" (send it in the X-CSRF-Token header)" if access.api else ""))
        if "write" not in principal.scopes:
            return refuse(403, READ_ONLY, "This token may only read.")
    if access.admin and not principal.admin:
        return refuse(403, "only administrators may do this")
    if access.role is None:
        return None
    project_id: int = request.path_params["project_id"]
    role = principal.role_in(project_id)
    project = await run(runtime.meta.project, project_id) if role is not None else None
    if role is None or project is None:
        return refuse(404, "no such project" if access.api else NO_PROJECT)
    request.state.project = project
    request.state.role = role
    if accounts.ROLE_RANK[role] < accounts.ROLE_RANK[access.role]:
        return refuse(403, role_needed(access.role))
    if access.replay and role == "viewer" and not project.viewers_can_replay:
        return refuse(403, "this project does not let viewers watch replays; ask an owner")
    return None


def sentence(message: str) -> str:
    """An API error message as a page says it."""
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def role_needed(role: str) -> str:
    if role == "owner":
        return "only the project's owners may do this"
    return f"this needs the role {role} or higher in the project"


# --- the audit log ----------------------------------------------------------------------------------


def client_ip(request: Request) -> str:
    """The caller's address: the peer, or what the configured trusted proxies forwarded."""
    state = request.app.state
    trusted = getattr(state, "trusted_proxies", None)
    if trusted is None:
        trusted = state.trusted_proxies = parse_trusted_proxies(runtime_of(request).settings.trusted_proxies)
    peer = request.client.host if request.client else ""
    address = client_address(peer, ",".join(request.headers.getlist("x-forwarded-for")), trusted)
    return str(address) if address is not None else ""


async def record(
    request: Request,
    action: str,
    project_id: int | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
    *,
    actor_id: int | None = None,
) -> None:
    """An audit entry for this request; the actor is the guard's principal unless ``actor_id`` is given."""
    if actor_id is None and isinstance(getattr(request.state, "principal", None), Principal):
        actor_id = principal_of(request).user_id
    meta = runtime_of(request).meta
    await run(audit.record, meta, actor_id, action, project_id, target, details, client_ip=client_ip(request))


# --- the session cookie ------------------------------------------------------------------------------


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
