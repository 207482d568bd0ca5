"""Dashboard pages for accounts: first-admin setup, sign-in, sign-out and personal API tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.store import accounts
from hitmetrix.store.web_sessions import SetupError, create_first_admin, end_session, setup_token_valid, start_session
from hitmetrix.web.auth import (
    SESSION_COOKIE,
    Principal,
    authenticate,
    clear_session_cookie,
    client_ip,
    guard,
    now_of,
    principal_of,
    public,
    record,
    runtime_of,
    set_session_cookie,
)
from hitmetrix.web.csrf import LOGIN_CSRF_COOKIE, login_csrf_of, read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, render
from hitmetrix.web.throttle import LoginThrottle

BAD_LOGIN = "Wrong email or password."
STALE_FORM = "This form expired or was sent from another site. Please try again."
BAD_SETUP_LINK = "This setup link is wrong or has expired. Restart the server to print a new one."


def safe_next(target: str | None) -> str | None:
    """A local path to return to after sign-in; anything that could leave the site is dropped."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return None
    return target


def wait_text(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{(seconds + 59) // 60} minutes"


def login_throttle_of(request: Request) -> LoginThrottle:
    """The app's sign-in throttle (one per app: its memory of failures is per process)."""
    state = request.app.state
    throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
    if throttle is None:
        runtime = runtime_of(request)
        throttle = state.login_throttle = LoginThrottle(lambda: runtime.clock())
    return throttle


def with_login_csrf(
    request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Response:
    """A pre-session form (sign-in, setup) with its double-submit CSRF token in a field and a cookie."""
    login_csrf = login_csrf_of(request)
    token = login_csrf.token_for(request)
    response = render(request, template, status_code, headers, csrf_token=token, **context)
    login_csrf.set_cookie(response, request, token)
    return response


async def signed_in(request: Request, user_id: int, target: str) -> Response:
    """Start a new session (never reuse one the browser brought along: session fixation)."""
    runtime = runtime_of(request)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await run(end_session, runtime.meta, old)
    _, token = await run(start_session, runtime.meta, user_id, now_of(runtime))
    response = RedirectResponse(target, 303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@public("a bare redirect to the project list")
async def root(request: Request) -> Response:
    return RedirectResponse("/projects", 302)


@public("the sign-in form")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    if request.method != "POST":
        target = safe_next(request.query_params.get("next"))
        principal = await authenticate(request)
        if principal is not None and principal.via == "session":
            return RedirectResponse(target or "/projects", 303)
        no_users = await run(accounts.user_count, runtime.meta) == 0
        return with_login_csrf(request, "login.html", next=target or "", no_users=no_users)
    form = await read_form(request)
    target = safe_next(form.get("next"))
    email = form.get("email", "").strip()
    if not await login_csrf_of(request).check(request):
        return with_login_csrf(request, "login.html", 403, error=STALE_FORM, email=email, next=target or "")
    throttle = login_throttle_of(request)
    ip = client_ip(request)
    wait_s = throttle.retry_after_s(email, ip)
    if wait_s:
        message = f"Too many failed sign-ins. Try again in {wait_text(wait_s)}."
        headers = {"Retry-After": str(wait_s)}
        return with_login_csrf(request, "login.html", 429, headers, error=message, email=email, next=target or "")
    user = await run(accounts.verify_login, runtime.meta, email, form.get("password", ""))
    if user is None:
        throttle.failure(email, ip)
        await record(request, "sign_in_failed", target=email[:320])
        return with_login_csrf(request, "login.html", 401, error=BAD_LOGIN, email=email, next=target or "")
    throttle.success(email)
    await record(request, "sign_in", target=user.email, actor_id=user.id)
    return await signed_in(request, user.id, target or "/projects")


@guard()
async def logout(request: Request) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run(end_session, runtime_of(request).meta, cookie)
    await record(request, "sign_out")
    response = RedirectResponse("/login", 303)
    clear_session_cookie(response, request)
    # Whatever this browser kept of the dashboard (recordings, pages) was this user's: drop it.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response


@public("works only with the one-time setup token, only while no user exists")
async def setup(request: Request) -> Response:
    runtime = runtime_of(request)
    meta = runtime.meta
    if await run(accounts.user_count, meta) > 0:
        return error_page(request, 403, "Setup is done: an administrator exists. Sign in instead.")
    if request.method != "POST":
        token = request.query_params.get("token", "")
        if not await run(setup_token_valid, meta, token, now_of(runtime)):
            return error_page(request, 403, BAD_SETUP_LINK)
        return with_login_csrf(request, "setup.html", token=token)
    form = await read_form(request)
    token, email = form.get("token", ""), form.get("email", "").strip()
    if not await login_csrf_of(request).check(request):
        return with_login_csrf(request, "setup.html", 403, token=token, email=email, error=STALE_FORM)
    if form.get("password", "") != form.get("password2", ""):
        return with_login_csrf(request, "setup.html", 400, token=token, email=email, error="The passwords differ.")
    try:
        user = await run(create_first_admin, meta, token, email, form.get("password", ""), now_of(runtime))
    except ValueError as exc:
        return with_login_csrf(request, "setup.html", 400, token=token, email=email, error=str(exc).capitalize())
    except SetupError:
        return error_page(request, 403, BAD_SETUP_LINK)
    runtime.projects.invalidate()
    await record(request, "sign_in", target=user.email, actor_id=user.id)
    return await signed_in(request, user.id, "/projects")


async def tokens_page(request: Request, principal: Principal, status_code: int = 200, **context: Any) -> Response:
    assert principal.user_id is not None
    tokens = await run(accounts.api_tokens_of, runtime_of(request).meta, principal.user_id)
    return render(request, "tokens.html", status_code, principal=principal, tokens=tokens, **context)


@guard()
async def tokens(request: Request) -> Response:
    principal = principal_of(request)
    if principal.user_id is None:
        return error_page(request, 400, "The local admin token has no personal API tokens.", principal)
    if request.method != "POST":
        return await tokens_page(request, principal)
    form = await read_form(request)
    try:
        token, plaintext = await run(
            accounts.create_api_token, runtime_of(request).meta, principal.user_id, form.get("name", ""),
            form.get("scope", ""),
        )
    except ValueError as exc:
        return await tokens_page(request, principal, 400, error=str(exc).capitalize(), name=form.get("name", ""))
    return await tokens_page(request, principal, 201, created=token, plaintext=plaintext)


@guard()
async def revoke_token(request: Request) -> Response:
    runtime, principal = runtime_of(request), principal_of(request)
    token_id = request.path_params["token_id"]
    if principal.user_id is None or not await run(
        accounts.revoke_api_token, runtime.meta, principal.user_id, token_id, now_of(runtime)
    ):
        return error_page(request, 404, "You have no such API token.", principal)
    return RedirectResponse("/account/tokens", 303)


ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/setup", setup, methods=["GET", "POST"]),
    Route("/account/tokens", tokens, methods=["GET", "POST"]),
    Route("/account/tokens/{token_id:int}/revoke", revoke_token, methods=["POST"]),
]
