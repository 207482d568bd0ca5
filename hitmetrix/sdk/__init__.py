"""Hitmetrix's server SDK: ASGI / WSGI middleware that sends a ``request`` event per request, ``track_auth`` for
sign-ins, and enforcement of Hitmetrix decisions. Standard library only; see docs/sdk.md.

    from hitmetrix.sdk import Client, HitmetrixASGI, HitmetrixWSGI
"""

from hitmetrix.sdk.asgi import HitmetrixASGI
from hitmetrix.sdk.client import Client
from hitmetrix.sdk.context import ROUTE_KEY, USER_KEY, set_user
from hitmetrix.sdk.wsgi import HitmetrixWSGI

__all__ = ["Client", "HitmetrixASGI", "HitmetrixWSGI", "ROUTE_KEY", "USER_KEY", "set_user"]
