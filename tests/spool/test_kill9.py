"""The spool's promise under kill -9: every acknowledged append survives, once, intact."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

from hitmetrix.spool import Spool
from tests.support import REPO


def _run_and_kill(directory: Path, prefix: str, acks_before_kill: int) -> set[str]:
    """Start an appender, kill -9 it once it has acknowledged that many appends; return every id it acked."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.spool.appender", str(directory), prefix],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked: set[str] = set()
    try:
        for line in child.stdout:
            acked.add(line.strip())
            if len(acked) >= acks_before_kill:
                child.send_signal(signal.SIGKILL)
                break
        else:
            raise AssertionError(f"appender ended early: {child.stderr.read() if child.stderr else ''}")
        acked.update(line.strip() for line in child.stdout)  # acknowledged before the kill landed
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()
    return acked


def test_every_acknowledged_append_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random(9)
    acked: set[str] = set()
    for round_no in range(4):
        acked |= _run_and_kill(tmp_path, f"r{round_no}", rng.randrange(200, 2_000))

    spool = Spool(tmp_path)
    spool.start()  # recovers the segment each kill left open
    try:
        ids = spool.sealed_segments()
        stored = [payload.split(b"|", 1)[0].decode() for sid in ids for payload in spool.read_segment(sid)]
    finally:
        spool.close()
    assert not list(tmp_path.glob("*.open"))
    assert len(stored) == len(set(stored)), "a record was stored twice"
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged appends lost, e.g. {sorted(missing)[:5]}"
