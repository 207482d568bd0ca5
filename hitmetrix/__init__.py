"""Hitmetrix: self-hosted behaviour analytics and session recording that catches attackers."""

__version__ = "0.1.0"
