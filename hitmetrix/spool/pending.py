"""An append waiting for the spool's writer thread, and how its caller is woken.

Asyncio callers are woken with one ``call_soon_threadsafe`` per event loop per
group commit, not one per append; thread callers through a concurrent Future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib

from hitmetrix.spool.segment import record_header

Waiter = asyncio.Future[None] | concurrent.futures.Future[None]


class Pending:
    __slots__ = ("header", "payload", "future", "loop", "size")

    def __init__(self, payload: bytes, future: Waiter, loop: asyncio.AbstractEventLoop | None) -> None:
        self.header = record_header(payload)
        self.payload = payload
        self.future = future
        self.loop = loop  # None for a concurrent.futures.Future
        self.size = len(self.header) + len(payload)


def settle(items: list[Pending], error: Exception | None) -> None:
    """Resolve every waiter of ``items``: success when ``error`` is None, else a copy of it each."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
    for item in items:
        if item.loop is None:
            _resolve(item.future, error)
        else:
            by_loop.setdefault(item.loop, []).append(item.future)
    for loop, futures in by_loop.items():
        # A closed loop has nobody left waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_all, futures, error)


def _resolve_all(futures: list[Waiter], error: Exception | None) -> None:
    for future in futures:
        _resolve(future, error)


def _resolve(future: Waiter, error: Exception | None) -> None:
    if future.done():  # a cancelled asyncio waiter: the record is written all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(type(error)(*error.args))
