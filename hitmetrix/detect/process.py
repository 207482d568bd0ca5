"""The detection engine in a child process of its own, so detection never takes CPU (or the GIL) from capture.

``DetectionProcess`` has the engine's face for the runtime (``start``, ``wake``,
``stop``, ``health``): it starts ``python -m hitmetrix.detect.process`` with
the node's settings, wakes it by writing a byte to its stdin (the spool's seal
listener), and stops it by closing stdin — the child observes what is sealed,
writes its cursor and exits. A child whose parent died sees its stdin end and
exits too, so none is left behind. The child writes its ``health()`` to
``<data_dir>/detect/health.json`` after each pass (and every second while idle);
the parent's ``/healthz`` and ``/metrics`` read that file.

Sinks run in the child: ``alert_sinks(settings, meta)`` lists them (a log line
per alert, and the projects' webhooks, whose sender has a thread of its own).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from hitmetrix.detect.engine import DETECT_DIR, DetectionEngine
from hitmetrix.detect.sinks import AlertSink, log_alert
from hitmetrix.settings import SETTINGS, Settings, load_settings
from hitmetrix.spool.segment import write_file_durably
from hitmetrix.store.meta import MetaStore

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
LOCK_FILE = "lock"
HEALTH_EVERY_S = 1.0
STOP_TIMEOUT_S = 30.0


def alert_sinks(settings: Settings, meta: MetaStore) -> list[AlertSink]:
    """What hears of every new alert, in the detection process: a log line, and the projects' webhooks."""
    from hitmetrix.detect.webhooks import WebhookSender  # per-project signed webhooks (their own thread)

    return [log_alert, WebhookSender(meta).start()]


def build_engine(settings: Settings, meta: MetaStore) -> DetectionEngine:
    from hitmetrix.detect.detectors import all_detectors
    from hitmetrix.detect.keys import install_secret

    data_dir = Path(settings.data_dir).resolve()
    engine = DetectionEngine(
        data_dir / "spool",
        meta,
        data_dir=data_dir,
        detectors=all_detectors(settings),
        secret=install_secret(data_dir),
        rebuild_window_s=settings.detect_rebuild_window_s,
        alert_cooldown_s=settings.detect_alert_cooldown_s,
        auto_block=settings.detect_auto_block,
        block_ttl_s=settings.detect_block_ttl_s,
        durable=settings.spool_fsync != "never",
    )
    for sink in alert_sinks(settings, meta):
        engine.add_alert_listener(sink)
    return engine


def _settings_json(settings: Settings) -> str:
    values = {s.name: settings.values[s.name] for s in SETTINGS}
    return json.dumps({name: str(v) if isinstance(v, Path) else v for name, v in values.items()})


class DetectionProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health_path = Path(settings.data_dir).resolve() / DETECT_DIR / HEALTH_FILE
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.health_path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hitmetrix.detect.process"],
            stdin=subprocess.PIPE,
            env={**os.environ, "HITMETRIX_DETECT_SETTINGS": _settings_json(self.settings)},
        )

    def wake(self, segment_id: int | None = None) -> None:
        """Called in the spool's writer thread: one byte, never blocking (a full pipe is awake already)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(proc.stdin.fileno(), False)
            os.write(proc.stdin.fileno(), b"w")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("the detection process did not stop within %.0f s; killing it", timeout_s)
            proc.kill()
            proc.wait(10)

    def health(self) -> dict[str, Any]:
        try:
            report: dict[str, Any] = json.loads(self.health_path.read_text())
        except (FileNotFoundError, ValueError):
            report = {"detect_starting": True}
        running = self._proc is not None and self._proc.poll() is None
        return {**report, "detect_process_running": running}


def child_main() -> int:
    from hitmetrix.observe.logs import configure_logging

    settings = load_settings(json.loads(os.environ["HITMETRIX_DETECT_SETTINGS"]), environ={})
    configure_logging(settings.log_level, settings.log_format)
    data_dir = Path(settings.data_dir).resolve()
    (data_dir / DETECT_DIR).mkdir(parents=True, exist_ok=True)
    # One engine per data directory: the child of a server killed a moment ago may still be finishing its
    # last pass; this one waits for it rather than observing the same segments at the same time.
    lock_fd = os.open(data_dir / DETECT_DIR / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    meta = MetaStore(settings.metadata_url, data_dir)
    engine = build_engine(settings, meta)
    health_path = data_dir / DETECT_DIR / HEALTH_FILE
    stdin = sys.stdin.buffer.fileno()
    try:
        while True:
            try:
                engine.run_once()
            except Exception:
                log.exception("detection pass failed; trying again at the next wake")
            with contextlib.suppress(OSError):
                write_file_durably(health_path, json.dumps(engine.health()).encode(), durable=False)
            ready, _, _ = select.select([stdin], [], [], HEALTH_EVERY_S)
            if ready and not os.read(stdin, 4096):  # stdin closed: the parent stops us (or died)
                break
        engine.run_once()
    finally:
        for sink in engine.listeners:
            stop = getattr(sink, "stop", None)
            if stop is not None:
                stop()  # webhooks: the delivery in hand; the rest wait in the store for the next start
        meta.close()
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
