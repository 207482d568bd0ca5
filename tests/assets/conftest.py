"""Fixtures of the asset-capture tests: scripted sites on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.assets.site import Site


@pytest.fixture()
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


@pytest.fixture()
def other_site() -> Iterator[Site]:
    """A second site: another origin than ``site``."""
    s = Site()
    yield s
    s.close()
