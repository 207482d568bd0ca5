"""Capture: the only HTTP entry for data — validate, rate-limit, enrich, append to the spool, answer.

Wire it with ``capture_routes(CaptureContext(...))`` and call ``warm_capture(settings)``
once at start-up so that no request pays for loading the geo database or the
user-agent parser.
"""

from __future__ import annotations

from hitmetrix.capture.context import CaptureContext, CaptureProject
from hitmetrix.capture.geo import warm_geo
from hitmetrix.capture.routes import BATCH_PATH, capture_routes
from hitmetrix.capture.useragent import warm_user_agent_parser
from hitmetrix.settings import Settings

__all__ = ["BATCH_PATH", "CaptureContext", "CaptureProject", "capture_routes", "warm_capture"]


def warm_capture(settings: Settings) -> None:
    """Load the user-agent parser and, when ``settings.geoip``, the geo database (~0.5 s, blocking)."""
    warm_user_agent_parser()
    if settings.geoip:
        warm_geo()
