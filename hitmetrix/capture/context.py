"""What the capture endpoint needs from the rest of the application, injected in one object."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hitmetrix.model import StoredBatch
from hitmetrix.settings import Settings


class CaptureProject(Protocol):
    """The few project facts capture uses; ``hitmetrix.store.meta.Project`` provides them."""

    @property
    def id(self) -> int: ...

    @property
    def ip_anonymisation(self) -> str: ...  # none | truncate | hash

    @property
    def ip_hash_key(self) -> str: ...

    def origins(self) -> list[str]: ...  # empty: any origin

    # Query keys whose values are kept in stored URLs besides utm_* (every other value is masked).
    # Read with getattr(project, "query_allowlist", ()): a project without it keeps utm_* only.
    @property
    def query_allowlist(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class CaptureContext:
    settings: Settings
    # Public key -> project, or None when unknown. Called on every request: make it a cached lookup.
    resolve_project: Callable[[str], CaptureProject | None]
    # Appends one encoded StoredBatch; returns once it is durable.
    spool_append: Callable[[bytes], Awaitable[None]]
    # Exceptions (from spool_append or resolve_project) meaning "cannot take writes now": 503 + Retry-After.
    unavailable_errors: tuple[type[BaseException], ...] = ()
    clock: Callable[[], float] = time.time  # wall clock, seconds since the epoch: received_at
    monotonic: Callable[[], float] = time.monotonic  # rate limiting
    # Told of each batch once it is durable (the live feed), on the event loop: must be quick and never raise.
    on_accepted: Callable[[StoredBatch], None] | None = None
    # Keys full client addresses and usernames for detection (hitmetrix.detect.keys.install_secret);
    # the default, a random one per process, suits tests only: keys would change at every start.
    install_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # Resolves server keys (hm_sk_…) for server sources; None: server sources are off.
    resolve_server_key: Callable[[str], CaptureProject | None] | None = None
