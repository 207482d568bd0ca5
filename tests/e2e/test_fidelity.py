"""Replay fidelity on part of the corpus of bench/fidelity (`make fidelity` measures all of it): pages recorded in
real Chromium with the real tracker, replayed in the dashboard, look the same as live (SSIM) at the start and end
of their scripted visit: a web font served without CORS headers, var() shorthands the CSSOM cannot serialise, and
a `:target` reached through the URL fragment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from bench.fidelity.harness import SSIM_TARGET, Fidelity
from bench.fidelity.visits import VISITS

pytestmark = pytest.mark.e2e

PAGES = ["fonts", "custom-props", "target"]


@pytest.fixture(scope="module")
def fidelity(browser: Browser, tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Fidelity]:
    with Fidelity(browser, tmp_path_factory.mktemp("fidelity"), artifacts / "fidelity") as run:
        yield run


@pytest.mark.parametrize("name", PAGES)
def test_replay_looks_like_the_live_page(fidelity: Fidelity, name: str) -> None:
    visit = next(v for v in VISITS if v.name == name)
    result = fidelity.measure(visit)
    likeness = {m.name: m.likeness for m in result.moments}
    assert all(m is not None and m.ssim >= SSIM_TARGET for m in likeness.values()), (likeness, result.replay_errors)
    assert result.replay_errors == []
