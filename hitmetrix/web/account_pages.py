"""Dashboard pages of one's own account: password change, sessions, API tokens; and the links admins hand out.

``/account`` is everyone's: change the password (the current one is needed,
every other session ends), see and end one's sessions, see one's API tokens
(made and revoked at ``/account/tokens``). ``/invite`` and ``/reset`` open
with the one-time link an admin made (shown to copy, or mailed): the person
chooses a password and lands signed in. They are forms without a session yet,
so they carry the sign-in form's double-submit CSRF token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, team
from hitmetrix.store.web_sessions import end_session, start_session
from hitmetrix.web.auth import (
    SESSION_COOKIE,
    Principal,
    client_ip,
    guard,
    now_of,
    principal_of,
    public,
    runtime_of,
    set_session_cookie,
)
from hitmetrix.web.csrf import LOGIN_CSRF_COOKIE, LoginCsrf, read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, render

BAD_LINK = "This link is wrong, has expired or was already used. Ask an administrator for a new one."
STALE_FORM = "This form expired or was sent from another site. Please try again."
NO_ACCOUNT = "The local admin token has no account of its own."
NOTICES = {
    "password": "Your password was changed.",
    "sessions": "Your other sessions were signed out.",
    "session": "That session was signed out.",
}


# --- the account page --------------------------------------------------------------------------------


def _account_context(runtime: Runtime, user_id: int, cookie: str | None) -> dict[str, Any]:
    now = now_of(runtime)
    sessions = team.live_sessions_of(runtime.meta, user_id, now)
    return {
        "sessions": [(s, team.is_session(s, cookie)) for s in sessions],
        "tokens": [t for t in accounts.api_tokens_of(runtime.meta, user_id) if t.revoked_at is None],
    }


async def _account_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    principal = principal_of(request)
    if principal.user_id is None:
        return error_page(request, 400, NO_ACCOUNT, principal)
    runtime = runtime_of(request)
    found = await run(_account_context, runtime, principal.user_id, request.cookies.get(SESSION_COOKIE))
    notice = NOTICES.get(request.query_params.get("done", ""))
    return render(request, "account.html", status_code, principal=principal, notice=notice, **found, **context)


@guard()
async def account(request: Request) -> Response:
    return await _account_page(request)


def _own_user(principal: Principal) -> int | None:
    return principal.user_id if principal.via == "session" else None


@guard()
async def change_password(request: Request) -> Response:
    principal = principal_of(request)
    user_id = _own_user(principal)
    if user_id is None:
        return error_page(request, 400, "Change a password from the dashboard, signed in.", principal)
    form = await read_form(request)
    if form.get("new_password", "") != form.get("new_password2", ""):
        return await _account_page(request, 400, password_error="The new passwords differ.")
    runtime = runtime_of(request)
    try:
        await run(
            team.change_password,
            runtime.meta,
            user_id,
            form.get("current_password", ""),
            form.get("new_password", ""),
            request.cookies.get(SESSION_COOKIE),
            now_of(runtime),
            client_ip=client_ip(request),
        )
    except ValueError as exc:
        return await _account_page(request, 400, password_error=str(exc).capitalize() + ".")
    return RedirectResponse("/account?done=password", 303)


@guard()
async def end_other_sessions(request: Request) -> Response:
    principal = principal_of(request)
    user_id = _own_user(principal)
    cookie = request.cookies.get(SESSION_COOKIE)
    if user_id is None or not cookie:
        return error_page(request, 400, "Only a signed-in session can sign out the others.", principal)
    runtime = runtime_of(request)
    await run(team.end_other_sessions, runtime.meta, user_id, cookie, now_of(runtime), client_ip=client_ip(request))
    return RedirectResponse("/account?done=sessions", 303)


@guard()
async def end_one_session(request: Request) -> Response:
    principal = principal_of(request)
    if principal.user_id is None:
        return error_page(request, 400, NO_ACCOUNT, principal)
    runtime = runtime_of(request)
    session_id: int = request.path_params["web_session_id"]
    ended = await run(
        team.end_own_session, runtime.meta, principal.user_id, session_id, now_of(runtime), client_ip=client_ip(request)
    )
    if not ended:
        return error_page(request, 404, "You have no such session.", principal)
    return RedirectResponse("/account?done=session", 303)


# --- invitation and reset links ----------------------------------------------------------------------


def _with_link_csrf(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    login_csrf = LoginCsrf(runtime_of(request).admin_token)
    token = login_csrf.token_for(request)
    response = render(request, template, status_code, None, csrf_token=token, **context)
    login_csrf.set_cookie(response, request, token)
    return response


def _sign_in(runtime: Runtime, old_cookie: str | None, user_id: int) -> str:
    """A fresh session for the user (never one the browser brought along); its cookie value."""
    if old_cookie:
        end_session(runtime.meta, old_cookie)
    _, token = start_session(runtime.meta, user_id, now_of(runtime))
    return token


async def _signed_in(request: Request, user_id: int) -> Response:
    runtime = runtime_of(request)
    token = await run(_sign_in, runtime, request.cookies.get(SESSION_COOKIE), user_id)
    response = RedirectResponse("/projects", 303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def _link_page(request: Request, kind: str) -> Response:
    """GET shows the password form for a live link; POST spends the link on the password and signs in."""
    runtime = runtime_of(request)
    meta, now = runtime.meta, now_of(runtime)
    template = "invite.html" if kind == team.INVITATION else "reset.html"
    lookup = team.invitation if kind == team.INVITATION else team.reset_link
    if request.method != "POST":
        token = request.query_params.get("token", "")
        link = await run(lookup, meta, token, now) if token else None
        if link is None:
            return error_page(request, 403, BAD_LINK)
        project = await run(meta.project, link.project_id) if link.project_id is not None else None
        return _with_link_csrf(request, template, token=token, link=link, invited_to=project)
    form = await read_form(request)
    token = form.get("token", "")
    link = await run(lookup, meta, token, now) if token else None
    if link is None:
        return error_page(request, 403, BAD_LINK)
    if not await LoginCsrf(runtime.admin_token).check(request):
        return _with_link_csrf(request, template, 403, token=token, link=link, error=STALE_FORM)
    if form.get("password", "") != form.get("password2", ""):
        return _with_link_csrf(request, template, 400, token=token, link=link, error="The passwords differ.")
    spend = team.accept_invitation if kind == team.INVITATION else team.reset_password
    try:
        user = await run(spend, meta, token, form.get("password", ""), now, client_ip=client_ip(request))
    except ValueError as exc:
        return _with_link_csrf(request, template, 400, token=token, link=link, error=str(exc).capitalize() + ".")
    except team.LinkError as exc:
        return error_page(request, 403, str(exc).capitalize() + ".")
    return await _signed_in(request, user.id)


@public("an invitation link: works only with its one-time token")
async def accept_invitation(request: Request) -> Response:
    return await _link_page(request, team.INVITATION)


@public("a password reset link: works only with its one-time token")
async def reset_password(request: Request) -> Response:
    return await _link_page(request, team.RESET)


ROUTES: list[BaseRoute] = [
    Route("/account", account, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/account/sessions/others/end", end_other_sessions, methods=["POST"]),
    Route("/account/sessions/{web_session_id:int}/end", end_one_session, methods=["POST"]),
    Route("/invite", accept_invitation, methods=["GET", "POST"]),
    Route("/reset", reset_password, methods=["GET", "POST"]),
]
