"""Detection in a child process: woken through its stdin, reporting through its health file, stopped cleanly."""

from __future__ import annotations

from pathlib import Path

from hitmetrix.detect.engine import CURSOR_FILE, DETECT_DIR
from hitmetrix.detect.process import DetectionProcess
from hitmetrix.settings import load_settings
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore
from tests.detect.test_engine import auth_batch, seal
from tests.support import wait_for


def test_the_child_observes_what_is_sealed_reports_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = MetaStore("", data_dir)
    pid = meta.create_project("site").id
    settings = load_settings({"data_dir": data_dir, "spool_fsync": "never", "log_level": "warning"}, environ={})
    detection = DetectionProcess(settings)
    detection.start()
    try:
        wait_for(lambda: "detect_cursor" in detection.health(), 60.0, what="the child's first report")
        assert detection.health()["detect_process_running"] is True
        segment = seal(data_dir / "spool", auth_batch(pid, 12))
        detection.wake(segment)
        wait_for(lambda: detection.health()["detect_counters"]["alerts_raised"] == 1, 30.0, what="the alert")
        (alert,) = security.alerts(meta, pid)
        assert alert.rule == "brute_force" and alert.entity_kind == "username"
    finally:
        detection.stop()
    assert detection.health()["detect_process_running"] is False
    assert (data_dir / DETECT_DIR / CURSOR_FILE).read_text().strip() == str(segment)
    meta.close()
