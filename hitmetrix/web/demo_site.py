"""The demo dating site at /demo (with ``--demo``): what a newcomer attacks to watch Hitmetrix catch it.

A small Starlette app: sign-up, sign-in / sign-out, public member profiles at
``/demo/members/{id}`` (sequential ids, so scrapers can walk them), search
(``/demo/search?q=``), messages and an export of one's own data behind sign-in,
and a password reset form. Its home page also has what the frustration signals are
made of: a button that does nothing (a dead click), one that throws (an error
click) and a premium offer page visitors leave at once (a quick back). Its data is
its own SQLite file (``hitmetrix.web.demo.members``).
It is instrumented like a customer's site: every page loads the tracker with the
demo project's public key, and the app is wrapped in the server middleware of
``hitmetrix.sdk``, which sends to this same server with the demo project's server
key and hears every sign-in, sign-up, reset and sign-out through ``track_auth``.
A failed sign-in answers 200 with an error text, as many real sites do.

Its sign-in cookie is ``demo_session`` with path ``/demo``: it never meets the
dashboard's ``hm_session``. Forms are urlencoded; bad input gets a 4xx page that
says what was wrong, never a 500.
"""

from __future__ import annotations

import atexit
import importlib
import ipaddress
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from hitmetrix.web.auth import public
from hitmetrix.web.demo.members import SESSION_MAX_AGE_S, SiteDb
from hitmetrix.web.offload import run

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).parent / "demo"
COOKIE = "demo_session"
MOUNT_PATH = "/demo"
COOKIE_PATH = MOUNT_PATH  # the site's cookie never reaches the dashboard's paths
MAX_FORM_BYTES = 16 * 1024
MAX_QUERY_CHARS = 100
PAGE_SIZE = 24
MAX_PAGE = 1000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_ID = re.compile(r"^[0-9]{1,18}$")
templates = Jinja2Templates(directory=DEMO_DIR / "templates")
WHY = "the demo dating site, a stand-in for the customer's site (only with --demo)"


class BadInput(Exception):
    """Input the site refuses: answered with ``status`` and the message, on the site's own error page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Site:
    """What the handlers share: the database, the tracker key and the SDK client (None: not instrumented)."""

    db: SiteDb
    tracker_key: str
    client: Any = None

    def track_auth(self, kind: str, username: str, ok: bool, request: Request, member_id: int | None = None,
                   reason: str = "") -> None:
        if self.client is None:
            return
        try:  # the SDK promises never to raise; the site does not bet its sign-in on that
            self.client.track_auth(kind, username, ok, request=request.scope,
                                   user_id=str(member_id) if member_id else None, reason=reason)
        except Exception:  # noqa: BLE001 - observing must never fail the host request
            log.warning("track_auth failed", exc_info=True)


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


# --- input ------------------------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body: 415 for another type, 413 past MAX_FORM_BYTES, 400 for bad encoding or NUL."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadInput("Send the form as application/x-www-form-urlencoded.", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadInput(f"The form is larger than {MAX_FORM_BYTES} bytes.", 413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("The form is not valid UTF-8 form data.") from None
    form = dict(pairs)
    if any("\x00" in v for v in form.values()):
        raise BadInput("The form holds a NUL character.")
    return form


def text(form: dict[str, str], name: str, label: str, max_chars: int, *, required: bool = True) -> str:
    value = form.get(name, "").strip()
    if required and not value:
        raise BadInput(f"{label} is required.")
    if len(value) > max_chars:
        raise BadInput(f"{label} is longer than {max_chars} characters.")
    return value


def email_of(form: dict[str, str]) -> str:
    email = text(form, "email", "Email", 254).lower()
    if not _EMAIL.match(email):
        raise BadInput("Email does not look like an email address.")
    return email


def int_param(raw: str | None, label: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not _ID.match(raw) or not low <= int(raw) <= high:
        raise BadInput(f"{label} must be a whole number from {low} to {high}.")
    return int(raw)


def safe_next(raw: str | None) -> str:
    """Only a path of this site: an open redirect is what phishers look for first."""
    if raw and raw.startswith("/demo/") and not raw.startswith("//") and "\\" not in raw and len(raw) < 500:
        return raw
    return "/demo/messages"


# --- pages ------------------------------------------------------------------------------------------


async def current_member(request: Request) -> int | None:
    """The signed-in member; also left in the request state for the middleware's ``user_of``."""
    token = request.cookies.get(COOKIE, "")
    member_id = await run(site_of(request).db.session_member, token) if token else None
    request.state.demo_member = member_id
    return member_id


def page(request: Request, template: str, member_id: int | None, status: int = 200, **context: Any) -> Response:
    context.update(member_id=member_id, hm_key=site_of(request).tracker_key)
    return templates.TemplateResponse(request, template, context, status_code=status,
                                      headers={"Cache-Control": "no-store"})


def error_page(request: Request, status: int, message: str) -> Response:
    member_id = getattr(request.state, "demo_member", None)
    return page(request, "error.html", member_id, status, code=status, message=message)


def to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/demo/signin?" + urlencode({"next": target}), 303)


def handles_bad_input(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except BadInput as bad:
            return error_page(request, bad.status, str(bad))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return public(WHY)(endpoint)


@handles_bad_input
async def home(request: Request) -> Response:
    member_id = await current_member(request)
    featured = await run(site_of(request).db.members, 0, 6)
    return page(request, "home.html", member_id, featured=featured)


@handles_bad_input
async def about(request: Request) -> Response:
    return page(request, "about.html", await current_member(request))


@handles_bad_input
async def offer(request: Request) -> Response:
    """A page visitors leave at once, back to the page before: the quick back of the frustration signals."""
    return page(request, "offer.html", await current_member(request))


@handles_bad_input
async def member_list(request: Request) -> Response:
    member_id = await current_member(request)
    page_no = int_param(request.query_params.get("page"), "page", 1, MAX_PAGE, 1)
    found = await run(site_of(request).db.members, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
    return page(request, "members.html", member_id, members=found, page_no=page_no, more=len(found) == PAGE_SIZE)


@handles_bad_input
async def profile(request: Request) -> Response:
    member_id = await current_member(request)
    found = await run(site_of(request).db.profile, request.path_params["member_id"])
    if found is None:
        return error_page(request, 404, "There is no member with this number.")
    return page(request, "profile.html", member_id, profile=found, sent=request.query_params.get("sent") == "1")


@handles_bad_input
async def search(request: Request) -> Response:
    member_id = await current_member(request)
    query = request.query_params.get("q", "").strip()
    if len(query) > MAX_QUERY_CHARS or "\x00" in query:
        raise BadInput(f"Search for at most {MAX_QUERY_CHARS} characters (and no NUL).")
    page_no = int_param(request.query_params.get("page"), "page", 1, MAX_PAGE, 1)
    found = await run(site_of(request).db.search, query, (page_no - 1) * PAGE_SIZE, PAGE_SIZE) if query else []
    return page(request, "search.html", member_id, q=query, members=found, page_no=page_no,
                more=len(found) == PAGE_SIZE)


@handles_bad_input
async def sign_up(request: Request) -> Response:
    member_id = await current_member(request)
    if request.method == "GET":
        return page(request, "signup.html", member_id, form={})
    site = site_of(request)
    form = await read_form(request)
    email = email_of(form)
    password = form.get("password", "")
    if not 8 <= len(password) <= 128:
        raise BadInput("Choose a password of 8 to 128 characters.")
    name = text(form, "name", "Name", 80)
    age = int_param(form.get("age", "").strip(), "Age", 18, 120, 0)
    if age == 0:
        raise BadInput("Age is required (18 or over).")
    city = text(form, "city", "City", 60, required=False)
    bio = text(form, "bio", "About you", 2000, required=False)
    new_id = await run(site.db.create_member, email, password, name, age, city, bio)
    if new_id is None:
        site.track_auth("signup", email, False, request, reason="email_taken")
        return page(request, "signup.html", member_id, 409, form=form, error="This email already has an account.")
    site.track_auth("signup", email, True, request, new_id)
    return await signed_in(request, new_id, f"/demo/members/{new_id}")


async def signed_in(request: Request, member_id: int, target: str) -> Response:
    token = await run(site_of(request).db.start_session, member_id)
    request.state.demo_member = member_id
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, token, max_age=SESSION_MAX_AGE_S, path=COOKIE_PATH, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@handles_bad_input
async def sign_in(request: Request) -> Response:
    member_id = await current_member(request)
    next_path = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return page(request, "signin.html", member_id, next=next_path, email="")
    site = site_of(request)
    form = await read_form(request)
    email = email_of(form)
    password = text(form, "password", "Password", 1024)
    found = await run(site.db.check_password, email, password)
    if found is None:
        exists = await run(site.db.member_id_by_email, email)
        site.track_auth("signin", email, False, request, reason="bad_password" if exists else "unknown_user")
        # 200, as many real sites answer: only the middleware's track_auth tells Hitmetrix it failed.
        return page(request, "signin.html", member_id, next=next_path, email=email,
                    error="Wrong email or password.")
    site.track_auth("signin", email, True, request, found)
    return await signed_in(request, found, safe_next(form.get("next")))


@handles_bad_input
async def sign_out(request: Request) -> Response:
    member_id = await current_member(request)
    site = site_of(request)
    if member_id is not None:
        email = (await run(site.db.export, member_id))["profile"].get("email", "")
        await run(site.db.end_session, request.cookies.get(COOKIE, ""))
        site.track_auth("signout", email, True, request, member_id)
    response = RedirectResponse("/demo/", 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
    return response


@handles_bad_input
async def reset(request: Request) -> Response:
    member_id = await current_member(request)
    if request.method == "GET":
        return page(request, "reset.html", member_id)
    site = site_of(request)
    email = email_of(await read_form(request))
    exists = await run(site.db.member_id_by_email, email)
    site.track_auth("reset", email, exists is not None, request, exists, reason="" if exists else "unknown_user")
    # The same answer either way: the form must not tell who has an account.
    return page(request, "reset.html", member_id, done=email)


@handles_bad_input
async def messages(request: Request) -> Response:
    member_id = await current_member(request)
    if member_id is None:
        if request.method == "GET":
            return to_sign_in(request)
        raise BadInput("Sign in to send messages.", 401)
    site = site_of(request)
    if request.method == "GET":
        return page(request, "messages.html", member_id, inbox=await run(site.db.inbox, member_id))
    form = await read_form(request)
    recipient = int_param(form.get("to", "").strip(), "Recipient", 1, 10**18 - 1, 0)
    body = text(form, "body", "Message", 2000)
    if recipient == 0:
        raise BadInput("Recipient is required.")
    if not await run(site.db.send_message, member_id, recipient, body):
        raise BadInput("There is no member with this number.", 404)
    return RedirectResponse(f"/demo/members/{recipient}?sent=1", 303)


@handles_bad_input
async def export(request: Request) -> Response:
    """The signed-in member's own data, and only theirs: no parameter names another member."""
    member_id = await current_member(request)
    if member_id is None:
        return to_sign_in(request)
    data = await run(site_of(request).db.export, member_id)
    return Response(json.dumps(data, indent=2), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="lovebirds-member-{member_id}.json"',
        "Cache-Control": "no-store",
    })


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    message = "There is nothing at this address." if status == 404 else "This address does not take that method."
    return error_page(request, status, message)


SITE_ROUTES: list[BaseRoute] = [
    Mount("/static", StaticFiles(directory=DEMO_DIR / "static")),
    Route("/", home),
    Route("/about.html", about),
    Route("/offer", offer),
    Route("/members", member_list),
    Route("/members/{member_id:int}", profile),
    Route("/search", search),
    Route("/signup", sign_up, methods=["GET", "POST"]),
    Route("/signin", sign_in, methods=["GET", "POST"]),
    Route("/signout", sign_out, methods=["POST"]),
    Route("/reset", reset, methods=["GET", "POST"]),
    Route("/messages", messages, methods=["GET", "POST"]),
    Route("/account/export", export),
]


# --- the mounted app ------------------------------------------------------------------------------------


def route_of(scope: Scope) -> str | None:
    """The route template as the visitor's URL has it (``/demo/members/{member_id:int}``): the middleware sits
    inside the /demo mount, so the template Starlette matched lacks the mount's prefix."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or hasattr(route, "routes"):
        return None  # nothing matched, or a static file
    return MOUNT_PATH + template


def user_of(scope: Scope) -> str | None:
    """The middleware's view of who is signed in: what ``current_member`` found for this request."""
    member_id = scope.get("state", {}).get("demo_member")
    return str(member_id) if member_id else None


class DemoSite:
    """The site, built on its first request from the node's runtime (its project, data directory and address),
    once per node app (kept in that app's state, so apps of different data directories never share one).

    ``routes`` is the site's route table, so the access matrix walks it like the node's own.
    """

    _building = threading.Lock()

    @property
    def routes(self) -> list[BaseRoute]:
        return SITE_ROUTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        node_state = scope["app"].state
        app: ASGIApp | None = getattr(node_state, "demo_site", None)
        if app is None:
            app = await anyio.to_thread.run_sync(self._build, scope)
        await app(scope, receive, send)

    def _build(self, scope: Scope) -> ASGIApp:
        node_state = scope["app"].state
        with self._building:
            app: ASGIApp | None = getattr(node_state, "demo_site", None)
            if app is None:
                app = node_state.demo_site = build_site(scope)
        return app


def build_site(scope: Scope) -> ASGIApp:
    runtime = scope["app"].state.runtime
    project = runtime.demo_project()
    db = SiteDb(runtime.data_dir / "demo" / "site.db")
    db.ensure()
    inner = Starlette(routes=SITE_ROUTES, exception_handlers={404: not_found, 405: not_found})
    client = sdk_client(scope, getattr(project, "server_key", None) or "", runtime.settings.trusted_proxies)
    inner.state.site = Site(db, project.public_key, client)
    if client is None:
        return inner
    middleware = importlib.import_module("hitmetrix.sdk").HitmetrixASGI
    wrapped: ASGIApp = middleware(inner, client, user_of=user_of, route_of=route_of)
    return wrapped


def sdk_client(scope: Scope, server_key: str, trusted_proxies: str) -> Any:
    """A client sending to this very server (the address the request came in on), or None without an SDK."""
    server = scope.get("server")
    if not server_key or not server or server[1] is None:
        return None
    try:
        client_class = importlib.import_module("hitmetrix.sdk").Client
    except (ImportError, AttributeError):
        log.warning("hitmetrix.sdk is not available: the demo site runs without the server middleware")
        return None
    host, port = server
    try:  # a real socket; an in-process test transport names a made-up host that nothing answers on
        host = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return None
    client = client_class(endpoint=f"http://{host}:{port}", server_key=server_key, trusted_proxies=trusted_proxies)
    atexit.register(client.close)
    return client
