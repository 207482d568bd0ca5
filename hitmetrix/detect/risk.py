"""Risk of one entity, 0–100 with its reasons, from its recent alerts.

Each alert that is not a false positive adds a weight for its severity, a
little more when it repeated, fading linearly to nothing over
``RISK_WINDOW_MS`` after it was last seen. Weights combine like independent
probabilities (``1 - Π(1 - w)``), so two high alerts score more than one but
nothing passes 100. This module is pure (no store, no clock) so the store, the
engine and the pages compute the same number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

RISK_WINDOW_MS = 24 * 3600 * 1000
SEVERITY_WEIGHT = {"low": 0.10, "medium": 0.25, "high": 0.50, "critical": 0.80}
MAX_REASONS = 10


class AlertLike(Protocol):
    rule: str
    severity: str
    state: str
    count: int
    last_seen_ms: int
    reasons: str  # JSON list of sentences, as stored


@dataclass(frozen=True, slots=True)
class Risk:
    score: int  # 0–100
    reasons: tuple[str, ...]


def alert_weight(severity: str, count: int, age_ms: int) -> float:
    """What one alert adds (0–1): its severity, up to +50 % for repeats, fading with age."""
    if age_ms >= RISK_WINDOW_MS or count < 1:
        return 0.0
    base = SEVERITY_WEIGHT.get(severity, 0.10)
    repeats = min(0.5, 0.1 * math.log2(count)) if count > 1 else 0.0
    fade = 1.0 - max(0, age_ms) / RISK_WINDOW_MS
    return min(0.95, base * (1 + repeats)) * fade


def risk_from_alerts(alerts: Iterable[AlertLike], now_ms: int) -> Risk:
    weighted: list[tuple[float, str]] = []
    for alert in alerts:
        if alert.state == "false_positive":
            continue
        weight = alert_weight(alert.severity, alert.count, now_ms - alert.last_seen_ms)
        if weight <= 0:
            continue
        minutes = max(0, now_ms - alert.last_seen_ms) // 60_000
        times = f"{alert.count} times, " if alert.count > 1 else ""
        weighted.append((weight, f"{alert.rule} ({alert.severity}): {times}last {_ago(minutes)}"))
    remaining = 1.0
    for weight, _ in weighted:
        remaining *= 1 - weight
    score = round(100 * (1 - remaining))
    weighted.sort(key=lambda item: -item[0])
    return Risk(score, tuple(reason for _, reason in weighted[:MAX_REASONS]))


def _ago(minutes: int) -> str:
    if minutes < 1:
        return "less than a minute ago"
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago"
