"""Requeueing quarantined items from outside the server: in process, or through a running server's loader.

Only one process may append to a spool (it holds the directory lock). With no
server running we take the lock, append, and seal; the next ``serve`` loads the
records. With a server running we leave requests in ``quarantine/requeue/``,
which its loader carries out within a poll interval, and wait for that.
"""

from __future__ import annotations

import time
from pathlib import Path

from hitmetrix.loader.loader import QUARANTINE_DIR
from hitmetrix.loader.quarantine import Quarantine, QuarantinedItem, QuarantineError
from hitmetrix.spool import Spool, SpoolUnavailableError

SPOOL_DIR = "spool"
_POLL_S = 0.1


def quarantine_of(data_dir: Path) -> Quarantine:
    return Quarantine(Path(data_dir) / QUARANTINE_DIR)


def requeue_items(
    data_dir: Path, item_ids: list[str] | None, *, spool_fsync: str = "always", wait_s: float = 30.0
) -> tuple[list[str], bool]:
    """Requeue the named open items (None: every open item that can be); returns their ids and
    whether a running server did it. QuarantineError for an unknown id, an item that cannot be
    requeued, or a server that did not pick the requests up within ``wait_s``."""
    quarantine = quarantine_of(data_dir)
    items = _chosen(quarantine, item_ids)
    if not items:
        return [], False
    spool = Spool(Path(data_dir) / SPOOL_DIR, fsync=spool_fsync)
    try:
        spool.start()
    except SpoolUnavailableError:  # a server holds the spool: its loader does the appending
        quarantine.request_requeue([item.id for item in items])
        _wait_for_pickup(quarantine, {item.id for item in items}, wait_s)
        return [item.id for item in items], True
    try:
        for item in items:
            quarantine.requeue(item, lambda record: spool.append_blocking(record, 30.0))
    finally:
        spool.close()
    return [item.id for item in items], False


def _chosen(quarantine: Quarantine, item_ids: list[str] | None) -> list[QuarantinedItem]:
    if item_ids is None:
        return [item for item in quarantine.items() if item.requeueable]
    items = []
    for value in item_ids:
        item = quarantine.open_item(value)
        if item is None:
            known = quarantine.get(value) is not None
            raise QuarantineError(f"item {value} was requeued already" if known else f"no quarantined item {value}")
        if not item.requeueable:
            item.requeue_record()  # raises the explanation
        items.append(item)
    return items


def _wait_for_pickup(quarantine: Quarantine, ids: set[str], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while ids & set(quarantine.requests()):
        if time.monotonic() > deadline:
            raise QuarantineError(
                f"the running server has not requeued the items within {wait_s:.0f} s;"
                " the requests stay in quarantine/requeue/ and are carried out when its loader runs"
            )
        time.sleep(_POLL_S)
