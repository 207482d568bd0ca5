"""The Spool: durable appends with group commit, sealing, recovery, ids, closing, and disk errors."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.spool import Spool, SpoolClosedError, SpoolUnavailableError
from hitmetrix.spool.active import SegmentFile, open_segment_file
from hitmetrix.spool.segment import MAGIC, encode_records, segment_path
from tests.support import wait_for

WAIT_S = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Disk:
    """Opens real segment files whose writes a test can hold back or make fail like a full disk."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()
        self.full = False
        self.fsync_breaks = False
        self.writes: list[int] = []

    def open(self, path: Path) -> SegmentFile:
        return _DiskFile(self, open_segment_file(path))


class _DiskFile:
    def __init__(self, disk: Disk, inner: SegmentFile) -> None:
        self.disk = disk
        self.inner = inner
        self.bad_fds: tuple[int, int] | None = None

    def write(self, data: bytes | memoryview, /) -> int | None:
        self.disk.writing.set()
        assert self.disk.gate.wait(WAIT_S)
        if self.disk.full:  # a partial write, then ENOSPC, as a full disk does
            self.inner.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        self.disk.writes.append(len(data))
        return self.inner.write(data)

    def truncate(self, size: int, /) -> int:
        return self.inner.truncate(size)

    def fileno(self) -> int:
        if self.disk.fsync_breaks:  # fsync on a pipe fails with EINVAL, like an I/O error would
            if self.bad_fds is None:
                self.bad_fds = os.pipe()
            return self.bad_fds[0]
        return self.inner.fileno()

    def close(self) -> None:
        if self.bad_fds is not None:
            for fd in self.bad_fds:
                os.close(fd)
            self.bad_fds = None
        self.inner.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def spools() -> Iterator[list[Spool]]:
    """Spools made by a test; closed at the end whatever happened."""
    made: list[Spool] = []
    yield made
    for spool in made:
        spool.close()


def _started(spools: list[Spool], directory: Path, **kwargs: object) -> Spool:
    """A started spool; its clock stands still unless the test brings one, so no seal comes by age."""
    kwargs.setdefault("clock", FakeClock())
    spool = Spool(directory, **kwargs)  # type: ignore[arg-type]
    spool.start()
    spools.append(spool)
    return spool


def _all_records(spool: Spool) -> list[bytes]:
    return [payload for sid in spool.sealed_segments() for payload in spool.read_segment(sid)]


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_appends_read_back_in_order_after_close(tmp_path: Path, spools: list[Spool], policy: str) -> None:
    spool = _started(spools, tmp_path, fsync=policy)
    payloads = [f"batch {i}".encode() * (i + 1) for i in range(50)]

    async def append_all() -> None:
        for payload in payloads[:25]:
            await spool.append(payload)

    asyncio.run(append_all())
    for payload in payloads[25:]:
        spool.append_blocking(payload, timeout_s=WAIT_S)
    assert spool.sealed_segments() == []  # nothing sealed yet: the reader never sees the open segment
    spool.close()
    assert spool.sealed_segments() == [1]
    assert list(spool.read_segment(1)) == payloads


def test_group_commit_writes_many_appends_at_once_and_wakes_every_waiter(tmp_path: Path, spools: list[Spool]) -> None:
    disk = Disk()
    spool = _started(spools, tmp_path, open_file=disk.open)
    disk.gate.clear()

    async def scenario() -> None:
        first = asyncio.create_task(spool.append(b"first"))
        await asyncio.sleep(0)
        assert disk.writing.wait(WAIT_S)  # the writer holds "first" and waits on the disk
        rest = [asyncio.create_task(spool.append(f"r{i}".encode())) for i in range(20)]
        await asyncio.sleep(0)  # every task has queued its append
        disk.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), WAIT_S)

    asyncio.run(scenario())
    assert disk.writes[0] == len(MAGIC)
    assert len(disk.writes) == 3  # the magic, "first", then the 20 others in one write (and one fsync)
    spool.close()
    assert _all_records(spool) == [b"first"] + [f"r{i}".encode() for i in range(20)]


def test_threads_appending_at_once_all_land(tmp_path: Path, spools: list[Spool]) -> None:
    spool = _started(spools, tmp_path, segment_max_bytes=4096)

    def append_200(t: int) -> None:
        for i in range(200):
            spool.append_blocking(f"{t}:{i}".encode(), WAIT_S)

    threads = [threading.Thread(target=append_200, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    spool.close()
    records = _all_records(spool)
    assert sorted(records) == sorted(f"{t}:{i}".encode() for t in range(8) for i in range(200))
    for t in range(8):  # each thread's appends keep their order
        assert [r for r in records if r.startswith(f"{t}:".encode())] == [f"{t}:{i}".encode() for i in range(200)]


def test_a_segment_is_sealed_when_it_reaches_its_size(tmp_path: Path, spools: list[Spool]) -> None:
    sealed: list[int] = []
    spool = _started(spools, tmp_path, segment_max_bytes=100)
    spool.add_seal_listener(sealed.append)
    for i in range(10):
        spool.append_blocking(bytes([i]) * 30, WAIT_S)  # 38 bytes a record: two fit after the magic
    spool.append_blocking(b"big" * 100, WAIT_S)  # bigger than a segment: gets one of its own
    wait_for(lambda: len(sealed) == 6, WAIT_S, what="size seals")
    assert sealed == spool.sealed_segments() == [1, 2, 3, 4, 5, 6]
    for sid in [1, 2, 3, 4, 5]:
        assert segment_path(tmp_path, sid, sealed=True).stat().st_size <= 100
    spool.close()
    assert _all_records(spool) == [bytes([i]) * 30 for i in range(10)] + [b"big" * 100]


def test_a_segment_is_sealed_when_old_even_without_traffic(
    tmp_path: Path, spools: list[Spool], clock: FakeClock
) -> None:
    spool = _started(spools, tmp_path, segment_max_age_s=1.0, clock=clock)
    spool.append_blocking(b"lonely", WAIT_S)
    clock.now += 0.5
    spool.append_blocking(b"second", WAIT_S)
    assert spool.sealed_segments() == []
    clock.now += 0.6
    wait_for(lambda: spool.sealed_segments() == [1], WAIT_S, what="age seal")
    assert list(spool.read_segment(1)) == [b"lonely", b"second"]
    clock.now += 100  # an empty spool has nothing to seal
    spool.append_blocking(b"next", WAIT_S)
    assert spool.sealed_segments() == [1]
    spool.close()
    assert spool.sealed_segments() == [1, 2]


def test_start_recovers_an_open_segment_with_a_torn_tail(tmp_path: Path, spools: list[Spool]) -> None:
    good = encode_records([b"kept 1", b"kept 2"])
    segment_path(tmp_path, 4, sealed=False).write_bytes(good + encode_records([b"torn away"])[len(MAGIC) : -2])
    segment_path(tmp_path, 5, sealed=False).write_bytes(MAGIC)  # opened, nothing written: deleted
    spool = _started(spools, tmp_path)
    assert spool.sealed_segments() == [4]
    assert segment_path(tmp_path, 4, sealed=True).read_bytes() == good
    spool.append_blocking(b"new", WAIT_S)
    spool.close()
    assert spool.sealed_segments() == [4, 6]  # 5 was handed out before the crash: never reused


def test_segment_ids_only_grow_across_restarts_and_removals(tmp_path: Path, spools: list[Spool]) -> None:
    seen = []
    for _ in range(3):
        spool = _started(spools, tmp_path)
        spool.append_blocking(b"x", WAIT_S)
        spool.close()
        (sid,) = spool.sealed_segments()
        seen.append(sid)
        spool.remove_segment(sid)  # loaded and gone
    assert seen == [1, 2, 3]
    (tmp_path / "next_id").unlink()  # even without the high-water file, a segment left over counts
    segment_path(tmp_path, 9, sealed=True).write_bytes(encode_records([b"old"]))
    spool = _started(spools, tmp_path)
    spool.append_blocking(b"y", WAIT_S)
    spool.close()
    assert spool.sealed_segments() == [9, 10]


def test_close_completes_every_queued_append(tmp_path: Path, spools: list[Spool]) -> None:
    disk = Disk()
    spool = _started(spools, tmp_path, open_file=disk.open)
    disk.gate.clear()

    async def scenario() -> None:
        tasks = [asyncio.create_task(spool.append(f"q{i}".encode())) for i in range(30)]
        await asyncio.sleep(0)
        assert disk.writing.wait(WAIT_S)
        closer = threading.Thread(target=spool.close)
        closer.start()
        wait_for(lambda: spool.closed, WAIT_S, what="close to begin")
        with pytest.raises(SpoolClosedError):
            await spool.append(b"refused")
        disk.gate.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        closer.join(WAIT_S)
        assert not closer.is_alive()

    asyncio.run(scenario())
    assert _all_records(spool) == [f"q{i}".encode() for i in range(30)]
    with pytest.raises(SpoolClosedError):
        spool.append_blocking(b"late")


def test_a_full_disk_refuses_the_appends_and_keeps_the_segment_whole(tmp_path: Path, spools: list[Spool]) -> None:
    disk = Disk()
    spool = _started(spools, tmp_path, open_file=disk.open)
    spool.append_blocking(b"before", WAIT_S)
    disk.full = True
    with pytest.raises(SpoolUnavailableError, match="No space left"):
        spool.append_blocking(b"while full" * 100, WAIT_S)
    disk.full = False
    spool.append_blocking(b"after", WAIT_S)
    spool.close()
    assert segment_path(tmp_path, 1, sealed=True).read_bytes() == encode_records([b"before", b"after"])


def test_a_failed_fsync_stops_the_spool_and_a_restart_keeps_what_was_acknowledged(
    tmp_path: Path, spools: list[Spool]
) -> None:
    disk = Disk()
    spool = _started(spools, tmp_path, open_file=disk.open)
    spool.append_blocking(b"acknowledged", WAIT_S)
    disk.fsync_breaks = True
    with pytest.raises(SpoolUnavailableError, match="fsync"):
        spool.append_blocking(b"never acknowledged", WAIT_S)
    with pytest.raises(SpoolUnavailableError, match="fsync"):
        spool.append_blocking(b"refused at once", WAIT_S)
    assert spool.failure is not None
    spool.close()
    assert spool.sealed_segments() == []  # left .open: the next start decides
    restarted = _started(spools, tmp_path)
    assert _all_records(restarted) == [b"acknowledged"]


def test_appends_are_refused_before_start_and_while_another_process_holds_the_directory(
    tmp_path: Path, spools: list[Spool]
) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolUnavailableError, match="not started"):
        spool.append_blocking(b"early")
    _started(spools, tmp_path)
    with pytest.raises(SpoolUnavailableError, match="in use"):
        Spool(tmp_path).start()


def test_a_cancelled_append_is_still_written(tmp_path: Path, spools: list[Spool]) -> None:
    disk = Disk()
    spool = _started(spools, tmp_path, open_file=disk.open)
    disk.gate.clear()

    async def scenario() -> None:
        task = asyncio.create_task(spool.append(b"cancelled"))
        await asyncio.sleep(0)
        assert disk.writing.wait(WAIT_S)
        task.cancel()
        disk.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await spool.append(b"next")

    asyncio.run(scenario())
    spool.close()
    assert _all_records(spool) == [b"cancelled", b"next"]


def test_the_loader_sees_the_backlog_and_the_bytes_of_sealed_segments(tmp_path: Path, spools: list[Spool]) -> None:
    spool = _started(spools, tmp_path)
    assert spool.sealed_backlog() == (0, 0.0)
    spool.append_blocking(b"one", WAIT_S)
    spool.close()
    restarted = _started(spools, tmp_path)
    restarted.append_blocking(b"two", WAIT_S)
    restarted.close()
    sealed_long_ago = time.time() - 30
    os.utime(segment_path(tmp_path, 1, sealed=True), (sealed_long_ago, sealed_long_ago))
    count, oldest_age_s = restarted.sealed_backlog()
    assert count == 2 and 30 <= oldest_age_s < 60
    assert restarted.segment_bytes(2) == encode_records([b"two"])
    restarted.remove_segment(1)
    count, oldest_age_s = restarted.sealed_backlog()
    assert count == 1 and oldest_age_s < 30
    restarted.remove_segment(2)
    assert restarted.sealed_backlog() == (0, 0.0)
    again = _started(spools, tmp_path)
    again.append_blocking(b"three", WAIT_S)
    again.close()
    assert again.sealed_segments() == [3]  # an id is never reused, even once its segment is gone


def test_files_recovery_moved_aside_are_listed(tmp_path: Path, spools: list[Spool]) -> None:
    (tmp_path / "0000000000000004.open").write_bytes(b"not a segment at all")
    spool = _started(spools, tmp_path)
    assert spool.quarantined_files() == [tmp_path / "quarantine" / "0000000000000004.open"]
    assert spool.sealed_segments() == []
