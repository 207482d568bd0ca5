"""A small Starlette site wrapped in HitmetrixASGI, served by uvicorn in the SDK's integration tests.

``/_stats`` answers the SDK's counters from outside the middleware (so reading them records nothing).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hitmetrix.sdk import HitmetrixASGI, set_user
from tests.sdk.hosts.config import client_from_env

client = client_from_env()


async def profile(request: Request) -> Response:
    return PlainTextResponse(f"member {request.path_params['member_id']}: Anna, 34, likes hiking\n")


async def signin(request: Request) -> Response:
    form = json.loads(await request.body())
    ok = form.get("password") == "correct horse"
    user_id = "u-" + form["username"].split("@")[0] if ok else None
    client.track_auth("signin", form["username"], ok, request=request, user_id=user_id)
    if ok:
        set_user(request, user_id)
    return PlainTextResponse("welcome\n" if ok else "wrong username or password\n")


site = HitmetrixASGI(
    Starlette(routes=[Route("/profiles/{member_id}", profile), Route("/signin", signin, methods=["POST"])]), client
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == "/_stats":
        await JSONResponse(client.stats())(scope, receive, send)
        return
    await site(scope, receive, send)
