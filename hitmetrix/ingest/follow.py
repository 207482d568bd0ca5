"""Read an access log once, or follow it, sending its lines as events and remembering where it stopped.

One pass: resend the ``pending`` range left by a crash (same batch, deduplicated by capture), then
read complete lines from the saved offset in batches of ``batch_lines``; each batch is recorded as
pending, sent, acknowledged, then the offset moves past it (hitmetrix.ingest.state). With
``follow``, at the end of the file it waits ``poll_s`` and looks again; when the path names
another file (rotation by renaming) it finishes the old file through its still-open handle
first, reading it until it has not grown for ``rotate_wait_s`` (the web server writes on to it
until it reopens its log); when the file shrank below the offset (copy-and-truncate) or its first line changed, it
starts the new content from 0. After a restart, a rotated file whose fingerprint is the saved
one is looked for beside the log (``access.log.1`` …) and finished first.

Event ids are derived from the file's fingerprint and the line's byte offset, the batch id from
the fingerprint and the batch's first offset: a line sent twice is the same event.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hitmetrix.ingest.parse import MAX_LINE_BYTES, LineError, LogRecord, parse_line
from hitmetrix.ingest.rules import AuthRule, infer_auth
from hitmetrix.ingest.sender import BatchSender
from hitmetrix.ingest.state import IngestState, Pending, load_state, save_state
from hitmetrix.store.schema import EVENT_RETENTION_DAYS, storable_ts_range_ms

log = logging.getLogger(__name__)
FINGERPRINT_BYTES = 1024
# Field limits of the server batch route (hitmetrix.capture.schema): longer values are cut, not refused.
LIMITS = {"path": 2048, "query": 4096, "user_agent": 1024, "referrer": 2048}
Line = tuple[int, int, bytes]  # offset in the file, length there, the bytes read


@dataclass
class IngestStats:
    lines: int = 0
    events: int = 0
    auth_events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def fingerprint(handle: IO[bytes]) -> str:
    """The hash of the file's first complete line (at most FINGERPRINT_BYTES); "" when there is none yet."""
    handle.seek(0)
    head = handle.readline(FINGERPRINT_BYTES)
    if not head.endswith(b"\n") and len(head) < FINGERPRINT_BYTES:
        return ""
    return hashlib.sha256(head).hexdigest()[:32]


def event_id(fp: str, offset: int, part: str) -> str:
    digest = hashlib.sha256(f"{fp}:{offset}:{part}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def line_events(record: LogRecord, fp: str, offset: int, rules: list[AuthRule]) -> list[dict[str, Any]]:
    common: dict[str, Any] = {
        "ts": record.ts_ms,
        "ip": record.ip,
        "user_agent": record.user_agent[: LIMITS["user_agent"]],
        "session_id": record.session_id if 8 <= len(record.session_id) <= 64 else "",
        "user_id": record.user_id[:256],
    }
    events = [
        {
            "type": "request",
            "id": event_id(fp, offset, "request"),
            **common,
            "method": record.method,
            "path": record.path[: LIMITS["path"]],
            "query": record.query[: LIMITS["query"]],
            "status": record.status if record.status <= 999 else 0,
            "duration_ms": min(record.duration_ms, 86_400_000.0),
            "bytes": record.bytes,
            "referrer": record.referrer[: LIMITS["referrer"]],
        }
    ]
    outcome = infer_auth(rules, record)
    if outcome is not None:
        events.append(
            {
                "type": "auth",
                "id": event_id(fp, offset, "auth"),
                **common,
                "path": record.path[: LIMITS["path"]],
                "kind": outcome.kind,
                "ok": outcome.ok,
                "reason": outcome.reason[:200],
            }
        )
    return events


class LogIngest:
    def __init__(
        self,
        path: Path,
        fmt: str,
        sender: BatchSender,
        state_path: Path,
        rules: list[AuthRule],
        *,
        batch_lines: int = 200,
        poll_s: float = 0.25,
        rotate_wait_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.sender = sender
        self.state_path = state_path
        self.rules = rules
        self.batch_lines = batch_lines
        self.poll_s = poll_s
        self.rotate_wait_s = rotate_wait_s
        self.clock = clock
        self.state: IngestState = load_state(state_path)
        self.stats = IngestStats()
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def run(self, follow: bool = False) -> IngestStats:
        self._finish_pending()
        handle: IO[bytes] | None = None
        renamed_size, quiet_since = -1, 0.0
        try:
            while not self.stopping:
                if handle is None:
                    handle = self._open_current()
                if handle is not None:
                    self._read_to_end(handle, final=not follow)
                if not follow:
                    break
                replaced = self._replaced(handle)
                if replaced == "renamed" and handle is not None:
                    # The web server writes on to the renamed file until it reopens its log: read it
                    # until it has been quiet for rotate_wait_s, then take the new file.
                    size = os.fstat(handle.fileno()).st_size
                    if size != renamed_size:
                        renamed_size, quiet_since = size, time.monotonic()
                    if time.monotonic() - quiet_since < self.rotate_wait_s:
                        time.sleep(self.poll_s)
                        continue
                    self._read_to_end(handle, final=True)
                if replaced and handle is not None:
                    handle.close()
                    handle = None
                    self.state.fingerprint, self.state.offset = "", 0
                    renamed_size = -1
                    continue
                time.sleep(self.poll_s)
        finally:
            if handle is not None:
                handle.close()
        return self.stats

    # --- files ---------------------------------------------------------------------------------

    def _open_current(self) -> IO[bytes] | None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across rotations
        except FileNotFoundError:
            return None
        fp = fingerprint(handle)
        if not fp:
            handle.close()
            return None
        if self.state.fingerprint and self.state.fingerprint != fp:
            # Rotated or replaced while we were away: finish the old content if it is still beside us.
            old = self._find_rotated(self.state.fingerprint)
            if old is not None:
                with open(old, "rb") as old_handle:
                    self._read_to_end(old_handle, final=True)
            self.state.fingerprint, self.state.offset = fp, 0
        elif not self.state.fingerprint or os.fstat(handle.fileno()).st_size < self.state.offset:
            self.state.fingerprint, self.state.offset = fp, 0
        return handle

    def _find_rotated(self, fp: str) -> Path | None:
        for candidate in sorted(self.path.parent.glob(self.path.name + ".*")):
            if candidate.suffix in (".gz", ".bz2", ".xz", ".zst") or not candidate.is_file():
                continue
            try:
                with open(candidate, "rb") as handle:
                    if fingerprint(handle) == fp:
                        return candidate
            except OSError:
                continue
        return None

    def _replaced(self, handle: IO[bytes] | None) -> str:
        """"renamed" (the path names another file), "truncated" (copy-and-truncate), or ""."""
        if handle is None:
            return ""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return ""  # renamed, the new file not made yet: keep reading the old one
        opened = os.fstat(handle.fileno())
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            return "renamed"
        if current.st_size < self.state.offset:
            return "truncated"  # copy-and-truncate
        if self.state.fingerprint and fingerprint(handle) not in ("", self.state.fingerprint):
            return "truncated"  # ... and already written past the old offset again
        return ""

    # --- lines ---------------------------------------------------------------------------------

    def _read_to_end(self, handle: IO[bytes], *, final: bool) -> None:
        fp = fingerprint(handle)
        if not fp:
            return
        if fp != self.state.fingerprint:  # rewritten in place between two looks
            self.state.fingerprint, self.state.offset = fp, 0
        while not self.stopping:
            lines = self._lines(handle, self.state.offset, self.batch_lines, final=final)
            if not lines:
                return
            offset, length, _ = lines[-1]
            self._send(fp, self.state.offset, offset + length, lines)

    def _lines(self, handle: IO[bytes], start: int, count: int, *, final: bool) -> list[Line]:
        """Up to ``count`` complete lines from ``start`` as (offset, length, bytes); a line longer than
        MAX_LINE_BYTES keeps only its start (parsing refuses it) but counts its whole length."""
        handle.seek(start)
        lines: list[Line] = []
        offset = start
        while len(lines) < count:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            length = len(line)
            if not line.endswith(b"\n") and len(line) > MAX_LINE_BYTES:
                while True:  # skip to the end of an endless line
                    rest = handle.readline(MAX_LINE_BYTES)
                    length += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                if not rest and not final:
                    break  # still being written
            elif not line.endswith(b"\n") and not final:
                break  # a line still being written
            lines.append((offset, length, line))
            offset += length
        return lines

    def _send(self, fp: str, start: int, end: int, lines: list[Line]) -> None:
        self.state.pending = Pending(fp, start, end)
        save_state(self.state_path, self.state)
        if not self._post(fp, start, lines):
            return  # stopped before the server took it: stays pending
        self.state.fingerprint, self.state.offset, self.state.pending = fp, end, None
        save_state(self.state_path, self.state)

    def _post(self, fp: str, start: int, lines: list[Line]) -> bool:
        now_ms = int(self.clock() * 1000)
        low, high = storable_ts_range_ms(now_ms, EVENT_RETENTION_DAYS)
        events: list[dict[str, Any]] = []
        for offset, _, line in lines:
            self.stats.lines += 1
            try:
                record = parse_line(line, self.fmt)
            except LineError as exc:
                self.stats.skip(str(exc).split(":")[0])
                continue
            if not low <= record.ts_ms <= high:
                self.stats.skip("time outside what the store keeps")
                continue
            made = line_events(record, fp, offset, self.rules)
            self.stats.events += len(made)
            self.stats.auth_events += len(made) - 1
            events.extend(made)
        batch = {"batch_id": f"log-{fp[:16]}-{start:x}", "sent_at": now_ms, "source": "log", "events": events}
        return self.sender.send(batch, should_stop=lambda: self.stopping)

    def _finish_pending(self) -> None:
        pending = self.state.pending
        if pending is None:
            return
        source = self._file_with(pending.fingerprint)
        if source is None:
            log.warning("ingest-log: the file of an unacknowledged batch is gone; its lines cannot be resent")
            self.state.pending = None
            return
        with open(source, "rb") as handle:
            handle.seek(pending.start)
            raw = handle.read(pending.end - pending.start)
        lines: list[Line] = []
        offset = pending.start
        for line in raw.splitlines(keepends=True):
            lines.append((offset, len(line), line[: MAX_LINE_BYTES + 1]))
            offset += len(line)
        if self._post(pending.fingerprint, pending.start, lines):
            self.state.fingerprint, self.state.offset, self.state.pending = pending.fingerprint, pending.end, None
            save_state(self.state_path, self.state)

    def _file_with(self, fp: str) -> Path | None:
        try:
            with open(self.path, "rb") as handle:
                if fingerprint(handle) == fp:
                    return self.path
        except FileNotFoundError:
            pass
        return self._find_rotated(fp)
