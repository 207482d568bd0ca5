"""What a detector is and what it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hitmetrix.detect.observation import Observation

SEVERITIES = ("low", "medium", "high", "critical")
ENTITY_KINDS = ("ip", "net", "asn", "user", "username", "device", "session")
MAX_EVIDENCE_SESSIONS = 20


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule crossed for one entity: what, why (plain sentences with the numbers) and the evidence."""

    rule: str
    severity: str  # one of SEVERITIES
    entity_kind: str  # one of ENTITY_KINDS
    entity_value: str  # ip_key, CIDR, "AS64500", user id, username key, device hash or session id
    entity_label: str  # what a person reads: the stored address, "a…@example.com", "AS64500 Example Org"
    reasons: tuple[str, ...]
    ts_ms: int
    project_id: int
    numbers: Mapping[str, float] = field(default_factory=dict)
    # (session id, ms of the attack moment in it): the replays / request timelines that prove it.
    sessions: tuple[tuple[str, int], ...] = ()


class Detector(Protocol):
    """A rule's detector. It may also declare ``kinds``, a frozenset of the event kinds it consumes: the engine
    then gives it only those (most events are browser clicks and scrolls that sign-in rules never read).
    Without ``kinds`` it sees every event."""

    rule: str

    def observe(self, obs: Observation) -> list[Finding]:
        """Update the detector's windowed state with one event; the findings it raises now."""
        ...
