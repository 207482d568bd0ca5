"""Replay fidelity on part of the corpus of bench/fidelity (`make fidelity` measures all of it): pages recorded in
real Chromium with the real tracker, replayed in the dashboard, look the same as live (SSIM) at the start and end
of their scripted visit: a web font served without CORS headers, var() shorthands the CSSOM cannot serialise,
a `:target` reached through the URL fragment, a constructed stylesheet and a canvas. The server keeps the pages'
stylesheets (and the canvas's pixels) once per project: the replays resolve them, and the export inlines them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from bench.fidelity.harness import SSIM_TARGET, Fidelity
from bench.fidelity.visits import VISITS
from hitmetrix.store.blobs import TEXT_REF_PREFIX, BlobStore

pytestmark = pytest.mark.e2e

PAGES = ["fonts", "custom-props", "target", "constructed", "canvas"]


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


def test_a_deduplicated_recording_replays_the_same_and_exports_whole(fidelity: Fidelity) -> None:
    visit = next(v for v in VISITS if v.name == "canvas")
    result = fidelity.measure(visit)
    assert all(m.likeness is not None and m.likeness.ssim >= SSIM_TARGET for m in result.moments), result.summary()
    assert fidelity.server is not None and fidelity.member is not None
    pid = fidelity.member.project_id
    chunks = fidelity.server.api(f"/api/v1/projects/{pid}/sessions/{result.session_id}").json()["recording_chunks"]
    blobs = BlobStore(fidelity.workdir / "data" / "recordings")
    stored = b"".join(blobs.stored_json(BlobStore.chunk_key(pid, result.session_id, c["seq"])) for c in chunks)
    assert TEXT_REF_PREFIX.encode() in stored and b"data:image/png" not in stored, "the pixels are kept apart"
    exported = fidelity.server.api(f"/api/v1/projects/{pid}/sessions/{result.session_id}/recording")
    assert exported.status_code == 200 and TEXT_REF_PREFIX not in exported.text
    snapshot = next(e for e in json.loads(exported.text) if e["type"] == 2)
    assert '"rr_dataURL": "data:image/png;base64,' in json.dumps(snapshot), "any rrweb player gets the pixels"
