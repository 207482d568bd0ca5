"""Alert sinks: a queued sink delivers in its own thread, drops (and counts) what does not fit, survives failures."""

from __future__ import annotations

import threading

from hitmetrix.detect.sinks import QueuedSink
from hitmetrix.store.security import Alert
from tests.support import wait_for


def alert(alert_id: int) -> Alert:
    return Alert(id=alert_id, rule="probing", severity="high", entity_kind="ip", entity_value="k", reasons="[]")


def test_a_queued_sink_delivers_in_its_own_thread_and_counts_drops_and_failures() -> None:
    release, busy = threading.Event(), threading.Event()
    delivered: list[tuple[int, str]] = []

    def deliver(item: Alert) -> None:
        busy.set()
        release.wait(10)
        if item.id == 2:
            raise RuntimeError("the receiver is down")
        delivered.append((item.id, threading.current_thread().name))

    sink = QueuedSink(deliver, name="test-sink", max_queued=2)
    sink(alert(1))
    assert busy.wait(10)
    for n in range(2, 6):
        sink(alert(n))  # never blocks the caller: 1 is being delivered, 2 and 3 wait, 4 and 5 do not fit
    assert sink.dropped == 2
    release.set()
    wait_for(lambda: len(delivered) == 2 and sink.failed == 1, 10.0)
    assert delivered == [(1, "hitmetrix-test-sink"), (3, "hitmetrix-test-sink")]
    sink.close()
