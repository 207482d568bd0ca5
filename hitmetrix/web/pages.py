"""Dashboard pages for accounts: first-admin setup, sign-in, sign-out and personal API tokens.

Also the one place that hands the app every accounts-related route: the
project pages and the JSON API for projects and tokens come from their own
modules and are returned from ``page_routes`` too.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.capture.network import client_address, parse_trusted_proxies
from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.store.web_sessions import SetupError, create_first_admin, end_session, setup_token_valid, start_session
from hitmetrix.web.auth import (
    SESSION_COOKIE,
    Principal,
    authenticate,
    clear_session_cookie,
    now_of,
    require_page,
    set_session_cookie,
)
from hitmetrix.web.csrf import LOGIN_CSRF_COOKIE, LoginCsrf, read_form
from hitmetrix.web.project_api import project_api_routes
from hitmetrix.web.project_pages import project_page_routes
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


def page_routes(runtime: Runtime) -> list[BaseRoute]:
    meta = runtime.meta
    throttle = LoginThrottle(lambda: runtime.clock())
    login_csrf = LoginCsrf(runtime.admin_token)
    trusted = parse_trusted_proxies(runtime.settings.trusted_proxies)

    def client_ip(request: Request) -> str:
        peer = request.client.host if request.client else ""
        address = client_address(peer, ",".join(request.headers.getlist("x-forwarded-for")), trusted)
        return str(address) if address is not None else ""

    def with_login_csrf(
        request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        """A pre-session form (sign-in, setup) with its double-submit CSRF token in a field and a cookie."""
        token = login_csrf.token_for(request)
        response = render(request, template, status_code, headers, csrf_token=token, **context)
        login_csrf.set_cookie(response, request, token)
        return response

    def signed_in(request: Request, user_id: int, target: str) -> Response:
        """Start a new session (never reuse one the browser brought along: session fixation)."""
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            end_session(meta, old)
        _, token = start_session(meta, user_id, now_of(runtime))
        response = RedirectResponse(target, 303)
        set_session_cookie(response, request, token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    async def root(request: Request) -> Response:
        return RedirectResponse("/projects", 302)

    async def login(request: Request) -> Response:
        if request.method != "POST":
            target = safe_next(request.query_params.get("next"))
            principal = await authenticate(request, runtime)
            if principal is not None and principal.via == "session":
                return RedirectResponse(target or "/projects", 303)
            no_users = accounts.user_count(meta) == 0
            return with_login_csrf(request, "login.html", next=target or "", no_users=no_users)
        form = await read_form(request)
        target = safe_next(form.get("next"))
        email = form.get("email", "").strip()
        if not await login_csrf.check(request):
            return with_login_csrf(request, "login.html", 403, error=STALE_FORM, email=email, next=target or "")
        ip = client_ip(request)
        wait_s = throttle.retry_after_s(email, ip)
        if wait_s:
            message = f"Too many failed sign-ins. Try again in {wait_text(wait_s)}."
            return with_login_csrf(
                request,
                "login.html",
                429,
                error=message,
                email=email,
                next=target or "",
                headers={"Retry-After": str(wait_s)},
            )
        user = await to_thread.run_sync(accounts.verify_login, meta, email, form.get("password", ""))
        if user is None:
            throttle.failure(email, ip)
            return with_login_csrf(request, "login.html", 401, error=BAD_LOGIN, email=email, next=target or "")
        throttle.success(email)
        return signed_in(request, user.id, target or "/projects")

    async def logout(request: Request) -> Response:
        checked = await require_page(request, runtime)
        if isinstance(checked, Response):
            return checked
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            end_session(meta, cookie)
        response = RedirectResponse("/login", 303)
        clear_session_cookie(response, request)
        # Whatever this browser kept of the dashboard (recordings, pages) was this user's: drop it.
        response.headers["Clear-Site-Data"] = '"cache"'
        return response

    async def setup(request: Request) -> Response:
        if accounts.user_count(meta) > 0:
            return error_page(request, 403, "Setup is done: an administrator exists. Sign in instead.")
        if request.method != "POST":
            token = request.query_params.get("token", "")
            if not setup_token_valid(meta, token, now_of(runtime)):
                return error_page(request, 403, BAD_SETUP_LINK)
            return with_login_csrf(request, "setup.html", token=token)
        form = await read_form(request)
        token, email = form.get("token", ""), form.get("email", "").strip()
        if not await login_csrf.check(request):
            return with_login_csrf(request, "setup.html", 403, token=token, email=email, error=STALE_FORM)
        if form.get("password", "") != form.get("password2", ""):
            return with_login_csrf(request, "setup.html", 400, token=token, email=email, error="The passwords differ.")
        try:
            user = await to_thread.run_sync(
                create_first_admin, meta, token, email, form.get("password", ""), now_of(runtime)
            )
        except ValueError as exc:
            return with_login_csrf(request, "setup.html", 400, token=token, email=email, error=str(exc).capitalize())
        except SetupError:
            return error_page(request, 403, BAD_SETUP_LINK)
        runtime.projects.invalidate()
        return signed_in(request, user.id, "/projects")

    def tokens_page(request: Request, principal: Principal, status_code: int = 200, **context: Any) -> Response:
        assert principal.user_id is not None
        tokens = accounts.api_tokens_of(meta, principal.user_id)
        return render(request, "tokens.html", status_code, principal=principal, tokens=tokens, **context)

    async def tokens(request: Request) -> Response:
        checked = await require_page(request, runtime)
        if isinstance(checked, Response):
            return checked
        if checked.user_id is None:
            return error_page(request, 400, "The local admin token has no personal API tokens.", checked)
        if request.method != "POST":
            return tokens_page(request, checked)
        form = await read_form(request)
        try:
            token, plaintext = accounts.create_api_token(
                meta, checked.user_id, form.get("name", ""), form.get("scope", "")
            )
        except ValueError as exc:
            return tokens_page(request, checked, 400, error=str(exc).capitalize(), name=form.get("name", ""))
        return tokens_page(request, checked, 201, created=token, plaintext=plaintext)

    async def revoke_token(request: Request) -> Response:
        checked = await require_page(request, runtime)
        if isinstance(checked, Response):
            return checked
        if checked.user_id is None or not accounts.revoke_api_token(
            meta, checked.user_id, request.path_params["token_id"], now_of(runtime)
        ):
            return error_page(request, 404, "You have no such API token.", checked)
        return RedirectResponse("/account/tokens", 303)

    return [
        Route("/", root, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/setup", setup, methods=["GET", "POST"]),
        Route("/account/tokens", tokens, methods=["GET", "POST"]),
        Route("/account/tokens/{token_id:int}/revoke", revoke_token, methods=["POST"]),
        *project_page_routes(runtime),
        *project_api_routes(runtime),
    ]
