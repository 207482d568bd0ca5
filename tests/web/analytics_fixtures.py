"""The seeded world the analytics API and page tests share: traffic loaded once per module into the module's store,
and per test (fresh metadata) a shop project beside another one, with a viewer of the shop only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import projects
from tests.analytics import groundtruth as gt
from tests.web.helpers import client, make_user, sign_in

ZONE = "Asia/Kolkata"  # the shop's time zone: far enough from UTC that a day boundary in the wrong zone shows
VIEWER = "viewer@example.com"


def load_traffic(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory, traffic: gt.Traffic) -> None:
    """Through the real spool and loader into the runtime's store (a spool directory of its own each time)."""
    gt.load(traffic, tmp_path_factory.mktemp("spool") / "spool", runtime.store, runtime.blobs)


def generated_traffic(seed: int, visitors: int) -> Callable[..., Any]:
    """A module's ``traffic`` fixture: the generator's seeded traffic, loaded once into the module's store. In the
    module: ``traffic = generated_traffic(seed=13, visitors=60)``."""

    @pytest.fixture(scope="module")
    def traffic(base_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> gt.Traffic:
        generated = gt.generate(seed=seed, visitors=visitors)
        load_traffic(base_runtime, tmp_path_factory, generated)
        return generated

    return traffic


def open_shop(runtime: Runtime, zone: str | None = ZONE) -> int:
    """Project 1 ("shop", in ``zone`` when given) and project 2 ("other") with nothing shared, and a viewer of the
    shop only; returns the shop's id."""
    for name in ("shop", "other"):
        projects.create_project(runtime.meta, name, owner_id=None)
    if zone is not None:
        projects.update_settings(runtime.meta, 1, {"time_zone": zone}, actor_id=None)
    make_user(runtime.meta, VIEWER, 1)
    return 1


def shop_fixture(loaded_by: str = "traffic") -> Callable[..., Any]:
    """A module's ``shop`` fixture: ``open_shop`` on each test's fresh metadata, once the module fixture
    ``loaded_by`` has put the module's data in the store. In the module: ``shop = shop_fixture()``."""

    @pytest.fixture
    def shop(runtime: Runtime, request: pytest.FixtureRequest) -> int:
        request.getfixturevalue(loaded_by)
        return open_shop(runtime)

    return shop


@contextlib.asynccontextmanager
async def signed_in(app: Starlette, email: str = VIEWER) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, signed in through the form (as the shop's viewer unless told)."""
    async with client(app) as c:
        await sign_in(c, email)
        yield c
