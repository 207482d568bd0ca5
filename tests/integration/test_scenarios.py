"""The labelled scenario runner (bench/scenarios) on its fast subset: a real server with the demo site, scripted
attackers that must be alerted by their detector, and benign visitors that must raise nothing, all within a bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.scenarios.catalogue import SCENARIOS
from bench.scenarios.runner import run_scenarios

pytestmark = pytest.mark.integration
QUICK = [s for s in SCENARIOS if s.quick]
MAX_RUN_S = 150.0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    started = time.monotonic()
    found = run_scenarios(QUICK, work_dir=Path(tmp_path_factory.mktemp("scenarios")), quick=True)
    found["run_s"] = time.monotonic() - started
    return found


def by_name(results: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(s for s in results["scenarios"] if s["name"] == name)


def test_the_subset_has_attacks_and_benign_visitors() -> None:
    kinds = {s.kind for s in QUICK}
    assert kinds == {"attack", "benign"}
    assert len({rule for s in QUICK for rule in s.expect}) >= 4


@pytest.mark.parametrize("scenario", [s for s in QUICK if s.kind == "attack"], ids=lambda s: s.name)
def test_each_attack_is_alerted_by_its_detector(results: dict, scenario) -> None:  # type: ignore[no-untyped-def,type-arg]
    found = by_name(results, scenario.name)
    assert not found["error"], found["error"]
    assert set(scenario.expect) <= set(found["raised"]), found
    allowed = set(scenario.expect) | set(scenario.allow)
    assert set(found["raised"]) <= allowed, found
    for alert in found["alerts"]:
        assert alert["reasons"], alert
        assert alert["time_to_alert_ms"] <= 5000, alert


@pytest.mark.parametrize("scenario", [s for s in QUICK if s.kind == "benign"], ids=lambda s: s.name)
def test_no_benign_visitor_is_alerted(results: dict, scenario) -> None:  # type: ignore[no-untyped-def,type-arg]
    found = by_name(results, scenario.name)
    assert not found["error"], found["error"]
    assert found["requests"] > 0
    assert found["alerts"] == [], found["alerts"]


def test_every_alert_is_explained_and_the_run_is_bounded(results: dict) -> None:  # type: ignore[type-arg]
    assert results["unexplained_alerts"] == []
    assert results["geo_problems"] == []
    assert results["server_tracebacks"] == 0
    assert results["alert_poll_errors"] == 0
    assert results["run_s"] < MAX_RUN_S
    counted = results["detectors"]
    assert counted["brute_force"]["detected"] == ["brute_force"]
    assert counted["probing"]["missed"] == []
