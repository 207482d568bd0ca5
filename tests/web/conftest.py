"""Fixtures shared by the web tests that drive the real app in process: one store per module, fresh metadata
and a fake clock per test. A module that needs other settings defines its own ``base_runtime``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import audit
from hitmetrix.web.app import build_app
from tests.web.helpers import FakeClock, close_runtime, open_runtime, with_fresh_meta


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def base_runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    # chDB holds one data directory per process at a time: one store per module, closed after it.
    runtime = open_runtime(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "data")
    yield runtime
    close_runtime(runtime)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(base_runtime: Runtime, tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    runtime = with_fresh_meta(base_runtime, tmp_path / "meta", clock)
    swallowed = audit.swallowed_errors.value
    yield runtime
    runtime.meta.close()
    assert audit.swallowed_errors.value == swallowed, "an audit entry could not be written"


@pytest.fixture
def app(runtime: Runtime) -> Starlette:
    return build_app(runtime)
