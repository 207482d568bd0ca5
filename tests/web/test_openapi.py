"""The OpenAPI document describes every JSON API route the app serves, with its methods."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Mount, Route

from hitmetrix.runtime import Runtime, build_runtime
from hitmetrix.settings import load_settings
from hitmetrix.web.app import build_app
from hitmetrix.web.openapi import openapi_document


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_runtime(load_settings({"data_dir": tmp_path_factory.mktemp("openapi") / "data"}, environ={}))
    yield rt
    rt.store.close()
    rt.meta.close()


def api_routes(routes: list, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from api_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and (prefix + route.path).startswith("/api/v1/"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
            yield path, {m.lower() for m in (route.methods or set())} - {"head"}


def test_every_api_route_is_documented(runtime: Runtime) -> None:
    documented = openapi_document()["paths"]
    served = list(api_routes(build_app(runtime).routes))
    assert len(served) >= 5
    for path, methods in served:
        assert path in documented, f"{path} is served but not in the OpenAPI document"
        missing = methods - set(documented[path]) - {"options"}
        assert not missing, f"{path}: methods {missing} are not documented"
