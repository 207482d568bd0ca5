"""Blocking calls (SQLAlchemy, ClickHouse, files) from async handlers, run in the thread pool.

Capture shares the event loop with the dashboard: a metadata query that waits
on SQLite's write lock must not hold up every batch behind it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from anyio import to_thread

P = ParamSpec("P")
T = TypeVar("T")


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread, awaited."""
    return await to_thread.run_sync(functools.partial(fn, *args, **kwargs))
