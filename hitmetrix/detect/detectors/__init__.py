"""The detectors, one module each; ``all_detectors(settings)`` builds the set the engine runs.

``DETECTORS`` is the built-in set, in one place: each entry takes the settings (its thresholds are the
``detect_<rule>_<what>`` settings) and returns an object with a ``rule`` and ``observe(obs) -> list[Finding]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hitmetrix.detect.detectors.account_takeover import AccountTakeoverDetector
from hitmetrix.detect.detectors.automation import AutomationDetector
from hitmetrix.detect.detectors.base import Detector
from hitmetrix.detect.detectors.brute_force import BruteForceDetector
from hitmetrix.detect.detectors.credential_stuffing import CredentialStuffingDetector
from hitmetrix.detect.detectors.password_spraying import PasswordSprayingDetector
from hitmetrix.detect.detectors.probing import ProbingDetector
from hitmetrix.detect.detectors.scraping import ScrapingDetector
from hitmetrix.detect.detectors.session_hijack import SessionHijackDetector
from hitmetrix.detect.detectors.signup_ring import SignupRingDetector

DETECTORS: tuple[Callable[[Any], Detector], ...] = (
    AutomationDetector,
    BruteForceDetector,
    CredentialStuffingDetector,
    PasswordSprayingDetector,
    AccountTakeoverDetector,
    SessionHijackDetector,
    ScrapingDetector,
    ProbingDetector,
    SignupRingDetector,
)


def all_detectors(settings: Any) -> list[Detector]:
    """One fresh instance of every built-in detector, configured from ``settings``."""
    return [make(settings) for make in DETECTORS]
