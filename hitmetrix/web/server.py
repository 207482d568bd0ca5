"""Run one node: build the runtime and app, then serve with uvicorn.

Also the CLI's client side: talk to the node serving a data directory, or
answer a request in process when none is running.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from hitmetrix.runtime import build_runtime, ensure_admin_token
from hitmetrix.settings import Settings
from hitmetrix.store.web_sessions import issue_setup_token
from hitmetrix.web.app import build_app

log = logging.getLogger(__name__)


def server_file(data_dir: Path) -> Path:
    return data_dir / "server.json"


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = build_runtime(settings)
    app = build_app(runtime)
    if settings.demo:
        project = runtime.demo_project()
        print(f"Demo site:  http://{settings.host}:{settings.port}/demo/  (project 'demo', key {project.public_key})")
    print(f"Hitmetrix:  http://{settings.host}:{settings.port}/   data in {runtime.data_dir}", flush=True)
    setup_token = issue_setup_token(runtime.meta)  # None once any user exists: never a default password
    if setup_token is not None:
        print(f"Create the first admin: http://{settings.host}:{settings.port}/setup?token={setup_token}", flush=True)
    marker = server_file(runtime.data_dir)
    marker.write_text(json.dumps({"url": f"http://{settings.host}:{settings.port}", "pid": os.getpid()}))
    # Capture allocates many short-lived objects; fewer young-generation
    # collections measurably raise throughput (DESIGN.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            # Scheme (for Secure cookies) and client address come from X-Forwarded-* of the
            # configured proxies only; with none configured, nobody's forwarded headers count.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
        )
    finally:
        marker.unlink(missing_ok=True)


def _running_server(data_dir: Path) -> str | None:
    marker = server_file(data_dir)
    try:
        info = json.loads(marker.read_text())
        url = str(info["url"])
        httpx.get(url + "/healthz", timeout=2.0).raise_for_status()
        return url
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None


def request(settings: Settings, path: str) -> tuple[int, Any]:
    """GET one API path with the local admin token: from the running server, or in process."""
    data_dir = Path(settings.data_dir).resolve()
    url = _running_server(data_dir)
    if url is not None:
        token = ensure_admin_token(data_dir)
        response = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
        return response.status_code, _body(response)
    runtime = build_runtime(settings)
    try:
        transport = httpx.ASGITransport(app=build_app(runtime))

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://hitmetrix.local") as client:
                return await client.get(path, headers={"Authorization": f"Bearer {runtime.admin_token}"})

        response = asyncio.run(call())
        return response.status_code, _body(response)
    finally:
        runtime.store.close()
        runtime.meta.close()


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
