"""Security metadata on real SQLite: alerts merge within the cooldown, decisions expire and extend,
allow-lists validate, risk follows severity and age, and every row is its project's alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.risk import RISK_WINDOW_MS
from hitmetrix.store import projects, security
from hitmetrix.store.meta import MetaStore

T0 = 1_795_000_000_000
MIN = 60_000
COOLDOWN = 15 * MIN


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path / "meta")
    yield store
    store.close()


def finding(project_id: int, ts_ms: int = T0, **changes: object) -> Finding:
    base = Finding(
        rule="brute_force",
        severity="medium",
        entity_kind="username",
        entity_value="a1b2c3d4e5f60708",
        entity_label="a…@example.com",
        reasons=("12 failed sign-ins for a…@example.com in 5 min (threshold 10)",),
        ts_ms=ts_ms,
        project_id=project_id,
        numbers={"failures": 12, "threshold": 10},
        sessions=(("s-1", ts_ms),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_findings_within_the_cooldown_merge_into_one_alert(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    first, new = security.upsert_alert(meta, finding(pid), T0, COOLDOWN)
    assert new and first.count == 1 and first.state == "open"
    later = finding(
        pid,
        T0 + 10 * MIN,
        severity="high",
        reasons=("30 failed sign-ins for a…@example.com in 5 min (threshold 10)",),
        numbers={"failures": 30},
        sessions=(("s-2", T0 + 10 * MIN), ("s-1", T0 + 10 * MIN)),
    )
    merged, new = security.upsert_alert(meta, later, T0 + 10 * MIN, COOLDOWN, times=3)
    assert not new and merged.id == first.id
    stored = security.alert(meta, pid, first.id)
    assert stored is not None
    assert (stored.count, stored.severity, stored.first_seen_ms, stored.last_seen_ms) == (4, "high", T0, T0 + 10 * MIN)
    assert stored.reason_list == ["30 failed sign-ins for a…@example.com in 5 min (threshold 10)"]
    assert stored.number_map == {"failures": 30.0}
    assert stored.session_list == [("s-1", T0), ("s-2", T0 + 10 * MIN)], "evidence grows, each session once"
    low, _ = security.upsert_alert(meta, finding(pid, T0 + 11 * MIN, severity="low"), T0, COOLDOWN)
    assert low.severity == "high", "a milder repeat does not lower the severity"


def test_a_finding_after_the_cooldown_or_a_resolution_is_a_new_alert(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    first, _ = security.upsert_alert(meta, finding(pid), T0, COOLDOWN)
    after_cooldown, new = security.upsert_alert(meta, finding(pid, T0 + COOLDOWN + 1), T0, COOLDOWN)
    assert new and after_cooldown.id != first.id
    security.set_alert_state(meta, pid, after_cooldown.id, "resolved", None)
    again, new = security.upsert_alert(meta, finding(pid, T0 + COOLDOWN + 2), T0, COOLDOWN)
    assert new and again.id not in (first.id, after_cooldown.id)
    other_entity, new = security.upsert_alert(meta, finding(pid, entity_value="ffff"), T0, COOLDOWN)
    assert new


def test_a_false_positive_keeps_its_label_and_absorbs_repeats(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    first, _ = security.upsert_alert(meta, finding(pid), T0, COOLDOWN)
    security.set_alert_state(meta, pid, first.id, "false_positive", None)
    repeat, new = security.upsert_alert(meta, finding(pid, T0 + MIN), T0, COOLDOWN)
    assert not new and repeat.id == first.id and repeat.state == "false_positive" and repeat.count == 2


def test_evidence_is_capped_at_twenty_sessions(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    sessions = tuple((f"s-{i}", T0 + i) for i in range(30))
    alert, _ = security.upsert_alert(meta, finding(pid, sessions=sessions), T0, COOLDOWN)
    assert len(alert.session_list) == security.MAX_EVIDENCE_SESSIONS


def test_alerts_are_listed_filtered_and_paged_per_project(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    other = meta.create_project("other").id
    made = [security.upsert_alert(meta, finding(pid, entity_value=f"user{i}"), T0, COOLDOWN)[0] for i in range(5)]
    security.upsert_alert(meta, finding(pid, rule="probing", entity_kind="ip", entity_value="k1"), T0, COOLDOWN)
    foreign, _ = security.upsert_alert(meta, finding(other), T0, COOLDOWN)
    assert [a.id for a in security.alerts(meta, pid, rule="brute_force", limit=3)] == [m.id for m in made[::-1][:3]]
    page2 = security.alerts(meta, pid, rule="brute_force", before_id=made[2].id)
    assert [a.id for a in page2] == [made[1].id, made[0].id]
    assert [a.rule for a in security.alerts(meta, pid, entity_kind="ip")] == ["probing"]
    assert security.alerts(meta, pid, since_ms=T0 + 1) == []
    security.set_alert_state(meta, pid, made[0].id, "acknowledged", None)
    assert [a.id for a in security.alerts(meta, pid, state="acknowledged")] == [made[0].id]
    assert security.alert(meta, pid, foreign.id) is None, "another project's alert is not found"
    with pytest.raises(KeyError):
        security.set_alert_state(meta, pid, foreign.id, "resolved", None)
    with pytest.raises(ValueError):
        security.set_alert_state(meta, pid, made[0].id, "ignored", None)
    assert security.alert_json(made[1])["reasons"] == list(made[1].reason_list)


def test_decisions_expire_extend_and_revoke(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    block = security.add_decision(meta, pid, "ip", "k1", "block", "brute force", 60, "rule", at_ms=T0)
    assert block.expires_ms == T0 + 60_000
    again = security.add_decision(meta, pid, "ip", "k1", "block", "brute force", 120, "rule", at_ms=T0 + 1000)
    assert again.id == block.id and again.expires_ms == T0 + 121_000, "a rule re-deciding extends its decision"
    manual = security.add_decision(meta, pid, "net", "198.51.100.0/24", "challenge", "by hand", None, "manual",
                                   by=None, match="198.51.100.0/24", at_ms=T0)
    assert manual.expires_ms is None
    assert {d.id for d in security.active_decisions(meta, pid, T0 + 2000)} == {block.id, manual.id}
    assert [d.id for d in security.active_decisions(meta, pid, T0 + 200_000)] == [manual.id], "the block expired"
    assert [d.id for d in security.active_decisions(meta, pid, T0, scope="ip", value="k1")] == [block.id]
    changed = security.decisions_changed_since(meta, pid, T0 + 500)
    assert [d.id for d in changed] == [block.id], "only the extension changed after T0 + 500 ms"
    revoked = security.revoke_decision(meta, pid, manual.id)
    assert revoked.revoked and not revoked.active(T0)
    assert manual.id in {d.id for d in security.decisions_changed_since(meta, pid, T0 + 5000)}
    other = meta.create_project("other").id
    with pytest.raises(KeyError):
        security.revoke_decision(meta, other, block.id)
    assert security.active_decisions(meta, other, T0) == []
    for bad in (("zone", "x", "block"), ("ip", "", "block"), ("ip", "x", "ban")):
        with pytest.raises(ValueError):
            security.add_decision(meta, pid, *bad, "r", 60, "manual")


def test_allow_entries_are_checked_and_normalised(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    ip = security.add_allow_entry(meta, pid, "ip", " 2001:DB8::1 ", "office")
    cidr = security.add_allow_entry(meta, pid, "cidr", "203.0.113.77/24")
    security.add_allow_entry(meta, pid, "user_agent", "UptimeRobot")
    assert (ip.value, cidr.value) == ("2001:db8::1", "203.0.113.0/24")
    for kind, value in (("ip", "1.2.3"), ("cidr", "nonsense"), ("cidr", "2001:db8::/96"), ("user", ""), ("x", "y")):
        with pytest.raises(ValueError):
            security.add_allow_entry(meta, pid, kind, value)
    assert [e.kind for e in security.allow_entries(meta, pid)] == ["ip", "cidr", "user_agent"]
    other = meta.create_project("other").id
    assert not security.remove_allow_entry(meta, other, ip.id), "not another project's entry"
    before = security.allow_entries_version(meta)
    assert security.remove_allow_entry(meta, pid, ip.id)
    assert security.allow_entries_version(meta) != before
    assert len(security.all_allow_entries(meta)) == 2


def test_risk_follows_severity_count_and_age(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    assert security.risk(meta, pid, "ip", "k1", T0) == (0, [])
    security.upsert_alert(meta, finding(pid, entity_kind="ip", entity_value="k1", severity="medium"), T0, COOLDOWN)
    medium, reasons = security.risk(meta, pid, "ip", "k1", T0)
    assert 20 <= medium <= 30 and reasons == ["brute_force (medium): last less than a minute ago"]
    security.upsert_alert(
        meta, finding(pid, entity_kind="ip", entity_value="k1", rule="probing", severity="critical"), T0, COOLDOWN
    )
    both, reasons = security.risk(meta, pid, "ip", "k1", T0)
    assert 80 < both <= 100 and reasons[0].startswith("probing (critical)"), "the heaviest reason first"
    later, _ = security.risk(meta, pid, "ip", "k1", T0 + RISK_WINDOW_MS // 2)
    assert later < both, "risk fades with time"
    assert security.risk(meta, pid, "ip", "k1", T0 + RISK_WINDOW_MS + 1) == (0, [])
    for alert in security.alerts(meta, pid):
        security.set_alert_state(meta, pid, alert.id, "false_positive", None)
    assert security.risk(meta, pid, "ip", "k1", T0)[0] == 0, "false positives add no risk"


def test_deleting_a_project_deletes_its_security_rows(meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    alert, _ = security.upsert_alert(meta, finding(pid), T0, COOLDOWN)
    security.add_decision(meta, pid, "ip", "k1", "block", "r", 60, "rule", alert_id=alert.id)
    security.add_allow_entry(meta, pid, "ip", "192.0.2.1")
    projects.delete_project(meta, pid, actor_id=None)
    assert security.alerts(meta, pid) == [] and security.decisions(meta, pid) == []
    assert security.allow_entries(meta, pid) == []
