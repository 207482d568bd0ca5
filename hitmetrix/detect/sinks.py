"""Where new alerts go besides the store: sinks the engine calls with each new alert.

``DetectionEngine.add_alert_listener(sink)`` registers one; the engine calls it in
its own thread, so a sink that talks to the network (webhooks) wraps itself in
``QueuedSink``: the engine only enqueues (bounded; what does not fit is dropped
and counted), and a thread of the sink's own does the slow part. ``log_alert``
writes one log line per new alert, for operators who read logs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from hitmetrix.store.security import Alert

log = logging.getLogger(__name__)

AlertSink = Callable[[Alert], None]


def log_alert(alert: Alert) -> None:
    reasons = alert.reason_list
    log.info(
        "security alert %d: %s (%s) on %s %s: %s",
        alert.id,
        alert.rule,
        alert.severity,
        alert.entity_kind,
        alert.entity_label or alert.entity_value,
        reasons[0] if reasons else "",
    )


class QueuedSink:
    """Calls ``deliver(alert)`` in a thread of its own; the engine's call only enqueues."""

    def __init__(self, deliver: AlertSink, *, name: str = "sink", max_queued: int = 10_000) -> None:
        self._deliver = deliver
        self._queue: queue.Queue[Alert | None] = queue.Queue(max_queued)
        self._name = name
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=f"hitmetrix-{name}", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout_s``), then stop."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            try:
                self._deliver(alert)
            except Exception:
                self.failed += 1
                log.exception("alert sink %s failed on alert %d", self._name, alert.id)
