"""The detection engine: sealed spool segments → observations → detectors → alerts, decisions and sinks.

It reads the spool on its own, independent of the loader (a slow store never
delays an alert): woken by the spool's seal listener (and polling as a
fallback), it takes every sealed segment after its durable cursor
(``<data_dir>/detect/cursor``, the last segment fully observed), in id order,
from the spool directory or from ``spool/done/`` where the loader's removals go
while the engine retains them (``Spool.retain_removed_segments``). Once a
segment is observed and older than ``detect_rebuild_window_s``, the engine
deletes it from ``done/``.

After a restart, the segments up to the cursor that are still inside the
rebuild window are replayed first with their findings discarded: detector
state comes back as it was and nothing is raised twice. Findings of new
segments become alerts (``store.security.upsert_alert``: merged per rule and
entity within ``detect_alert_cooldown_s``). Findings are written at the end of
each segment and at least every 0.5 s within a long one, all in one
transaction, repeats for the same rule and entity folded into one update: a
flood of findings costs a few disk syncs, not one each. A crash between an
alert and the cursor write replays one segment live: its findings merge into
the alerts they made (the count grows, no second alert).

Allow-listed observations never reach a detector and allow-listed entities
raise nothing (``allowlist``). With ``detect_auto_block``, a high or critical
alert makes a ``block`` decision for its entity for ``detect_block_ttl_s``. New
alerts go to the sinks (``add_alert_listener``), in the engine's thread: a
sink must hand work off quickly (webhooks queue deliveries).

Bad input never stops it: an undecodable record, a damaged segment's tail, a
detector that raises, or a store error is logged (rate-limited), counted in
``health()``, and the engine goes on with the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from hitmetrix.detect.allowlist import AllowLists
from hitmetrix.detect.detectors.base import MAX_EVIDENCE_SESSIONS, SEVERITIES, Detector, Finding
from hitmetrix.detect.observation import observations
from hitmetrix.detect.state import state_of
from hitmetrix.model import decode_batch
from hitmetrix.spool.segment import parse_segment_name, scan_records, write_file_durably
from hitmetrix.spool.writer import DONE_DIR
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore

log = logging.getLogger(__name__)

CURSOR_FILE = "cursor"
DETECT_DIR = "detect"
# A finding's entity kind → the decision scope that enforces it (usernames and networks of a whole AS are
# never blocked automatically: that would lock out the victim or everyone behind a provider).
BLOCK_SCOPES = {"ip": "ip", "net": "net", "user": "user", "session": "session", "device": "device"}
BLOCK_SEVERITIES = ("high", "critical")
ALLOWLIST_CHECK_S = 3.0
PROJECTS_CHECK_S = 10.0
PROJECT_RECHECK_S = 0.5  # a deleted project's findings look it up again at most this often
CLEANUP_EVERY_S = 30.0
FLUSH_EVERY_S = 0.5  # findings are written at the end of each segment, and at least this often within one
LOG_EVERY_S = 10.0  # at most one log line per kind of trouble in this time
_SAMPLES = 1000  # latencies kept for percentiles
# Batch ids remembered to skip client retries: ~4 minutes of batches at capture's full rate, ~20 MB.
MAX_SEEN_BATCHES = 200_000
_RATE_WINDOW_S = 10.0

AlertListener = Callable[[security.Alert], None]


@dataclasses.dataclass
class _Folded:
    """Findings of one rule for one entity since the last write, written as one alert update."""

    finding: Finding
    times: int
    received_ms: int  # when capture acknowledged the first one's batch


def _fold(into: Finding, more: Finding) -> Finding:
    known = {sid for sid, _ in into.sessions}
    sessions = into.sessions + tuple(s for s in more.sessions if s[0] not in known)
    return dataclasses.replace(
        more,
        severity=max(into.severity, more.severity, key=SEVERITIES.index),
        ts_ms=max(into.ts_ms, more.ts_ms),
        sessions=sessions[:MAX_EVIDENCE_SESSIONS],
        reasons=more.reasons or into.reasons,
        numbers=more.numbers or into.numbers,
    )


def percentile(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


class DetectionEngine:
    """Runs ``detectors`` over every event the spool seals, in a thread of its own (``start``/``stop``).

    ``run_once()`` does one pass in the caller's thread (tests, benchmarks). ``clock`` is the wall clock
    in seconds (alert times, lag, retention)."""

    def __init__(
        self,
        spool_dir: Path,
        meta: MetaStore,
        *,
        data_dir: Path,
        detectors: Sequence[Detector],
        secret: bytes,
        rebuild_window_s: float = 3600.0,
        alert_cooldown_s: float = 900.0,
        auto_block: bool = False,
        block_ttl_s: float = 3600.0,
        poll_interval_s: float = 1.0,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.done_dir = self.spool_dir / DONE_DIR
        self.meta = meta
        self.detectors = list(detectors)
        self.rebuild_window_s = rebuild_window_s
        self.cooldown_ms = int(alert_cooldown_s * 1000)
        self.auto_block = auto_block
        self.block_ttl_s = block_ttl_s
        self.poll_interval_s = poll_interval_s
        self._durable = durable
        self._clock = clock
        self._dir = Path(data_dir) / DETECT_DIR
        self._dir.mkdir(parents=True, exist_ok=True)
        self._cursor_path = self._dir / CURSOR_FILE
        self.cursor = self._read_cursor()
        self._allow = AllowLists(secret)
        self._allow_version: tuple[int, int] | None = None
        self._allow_checked = -1e18
        self._projects: set[int] = set()
        self._missing: dict[int, float] = {}  # project id → when it was last found missing (deleted)
        self._projects_checked = -1e18
        self._cleaned = -1e18
        self._rebuilt = False
        self._folded: dict[tuple[int, str, str, str], _Folded] = {}
        # Hashes of the batch ids observed lately (the oldest forgotten first), rebuilt with the state.
        self._seen_batches: OrderedDict[int, None] = OrderedDict()
        self._flushed_at = time.monotonic()
        self._listeners: list[AlertListener] = []
        self._lock = threading.Lock()  # one pass at a time (the thread, run_once, stop's last pass)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_log: dict[str, float] = {}
        self.counters: dict[str, int] = {
            "segments": 0,
            "segments_replayed": 0,
            "segments_missing": 0,
            "records": 0,
            "bad_records": 0,
            "duplicate_batches": 0,
            "damaged_segments": 0,
            "events": 0,
            "events_allowed": 0,
            "findings": 0,
            "findings_allowed": 0,
            "findings_unknown_project": 0,
            "alerts_raised": 0,
            "alerts_merged": 0,
            "decisions": 0,
            "detector_errors": 0,
            "store_errors": 0,
            "sink_errors": 0,
            "segments_deleted": 0,
        }
        self._lag_ms: deque[float] = deque(maxlen=_SAMPLES)
        self._alert_latency_ms: deque[float] = deque(maxlen=_SAMPLES)
        self._rate: deque[tuple[float, int]] = deque(maxlen=256)

    # -- running ------------------------------------------------------------------------

    @property
    def listeners(self) -> tuple[AlertListener, ...]:
        return tuple(self._listeners)

    def add_alert_listener(self, listener: AlertListener) -> None:
        """Call ``listener(alert)`` for every new alert, in the engine's thread: keep it quick."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("detection engine already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hitmetrix-detect", daemon=True)
        self._thread.start()

    def wake(self, segment_id: int | None = None) -> None:
        """Look for sealed segments now (pass this to ``Spool.add_seal_listener``)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the segment in hand, observe what is sealed by now, and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        try:
            self.run_once()
        except Exception:
            log.exception("detection's last pass failed; the next start observes those segments")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once(self._stop.is_set)
            except Exception:  # a bug or the disk: keep the thread, try again at the next wake
                self._trouble("pass", "detection pass failed", exc_info=True)
            self._wake.wait(self.poll_interval_s)

    def run_once(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Rebuild state if not done yet, then observe every segment sealed after the cursor; how many."""
        with self._lock:
            if not self._rebuilt:
                self._rebuild(stopping)
                self._rebuilt = True
            done = 0
            for segment_id in self._segment_ids(after=self.cursor):
                if stopping():
                    break
                self._observe_segment(segment_id, live=True)
                self._write_cursor(segment_id)
                done += 1
            if self._clock() - self._cleaned >= CLEANUP_EVERY_S:
                self._cleanup()
            return done

    # -- segments -----------------------------------------------------------------------

    def _segment_ids(self, *, after: int = 0, up_to: int | None = None) -> list[int]:
        ids: set[int] = set()
        for directory in (self.spool_dir, self.done_dir):
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                parsed = parse_segment_name(entry.name)
                if parsed is not None and parsed[1] and parsed[0] > after and (up_to is None or parsed[0] <= up_to):
                    ids.add(parsed[0])
        return sorted(ids)

    def _segment_bytes(self, segment_id: int) -> bytes | None:
        name = f"{segment_id:016d}.seg"
        # The loader may move it from the spool to done/ between the two tries: look in the spool again.
        for path in (self.spool_dir / name, self.done_dir / name, self.spool_dir / name):
            with contextlib.suppress(FileNotFoundError):
                return path.read_bytes()
        return None

    def _rebuild(self, stopping: Callable[[], bool]) -> None:
        """Replay the retained window up to the cursor, findings discarded: the state, not the alerts."""
        if self.cursor <= 0:
            return
        oldest = self._clock() - self.rebuild_window_s
        replayed = 0
        for segment_id in self._segment_ids(up_to=self.cursor):
            if stopping():
                return
            path = self._path_of(segment_id)
            try:
                if path is None or path.stat().st_mtime < oldest:
                    continue
            except FileNotFoundError:
                continue
            self._observe_segment(segment_id, live=False)
            replayed += 1
        if replayed:
            log.info("detection state rebuilt from %d spool segments (up to segment %d)", replayed, self.cursor)

    def _path_of(self, segment_id: int) -> Path | None:
        name = f"{segment_id:016d}.seg"
        for path in (self.spool_dir / name, self.done_dir / name):
            if path.exists():
                return path
        return None

    def _observe_segment(self, segment_id: int, *, live: bool) -> None:
        data = self._segment_bytes(segment_id)
        if data is None:  # quarantined by the loader, or removed while no one retained it
            self.counters["segments_missing"] += 1
            return
        payloads, _, problem = scan_records(data)
        if problem is not None:
            self.counters["damaged_segments"] += 1
            self._trouble("damaged", "spool segment %d is damaged (%s); observing its %d good records",
                          segment_id, problem, len(payloads))
        now_ms = int(self._clock() * 1000)
        if live:
            self._refresh(now_ms)
        allow_any = len(self._allow) > 0  # most installs have no allow-list: no per-event check then
        routes: dict[str, tuple[Detector, ...]] = {}  # event kind -> the detectors that consume it
        for payload in payloads:
            self.counters["records"] += 1
            try:
                batch = decode_batch(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.counters["bad_records"] += 1
                self._trouble("record", "spool segment %d: a record is not a batch (%s); skipped", segment_id, exc)
                continue
            if batch.batch_id:
                # A client's retry after a lost answer is the same batch again: the loader stores it once, and
                # detection must count it once too, or a retried sign-in failure counts double.
                seen_key = hash((batch.project_id, batch.session_id, batch.batch_id))
                if seen_key in self._seen_batches:
                    self.counters["duplicate_batches"] += 1
                    continue
                self._seen_batches[seen_key] = None
                if len(self._seen_batches) > MAX_SEEN_BATCHES:
                    self._seen_batches.popitem(last=False)
            if live:
                self._lag_ms.append(max(0, now_ms - batch.received_at))
            try:
                batch_observations = observations(batch)
            except Exception as exc:  # noqa: BLE001 - a record that decodes but cannot be observed
                self.counters["bad_records"] += 1
                self._trouble("record", "spool segment %d: batch %r skipped: %r", segment_id, batch.batch_id, exc)
                continue
            if live and self._folded and time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
                self._flush_folded()  # a big segment must not hold its first alerts back
            self.counters["events"] += len(batch_observations)
            if allow_any:
                kept = [obs for obs in batch_observations if not self._allow.observation_allowed(obs)]
                self.counters["events_allowed"] += len(batch_observations) - len(kept)
                batch_observations = kept
            for obs in batch_observations:
                detectors = routes.get(obs.kind)
                if detectors is None:
                    detectors = routes[obs.kind] = self._detectors_for(obs.kind)
                for detector in detectors:
                    try:
                        found = detector.observe(obs)
                    except Exception:
                        self.counters["detector_errors"] += 1
                        self._trouble(f"detector:{detector.rule}", "detector %s failed on an event of batch %r",
                                      detector.rule, batch.batch_id, exc_info=True)
                        continue
                    if found and live:
                        for finding in found:
                            self._take(finding, batch.received_at)
        if live:
            self._flush_folded()
            self.counters["segments"] += 1
            self._rate.append((time.monotonic(), self.counters["events"]))
        else:
            self.counters["segments_replayed"] += 1

    def _detectors_for(self, kind: str) -> tuple[Detector, ...]:
        """The detectors that consume events of ``kind``: those declaring it in ``kinds``, and those declaring
        none (they see every event)."""
        chosen = []
        for detector in self.detectors:
            kinds = getattr(detector, "kinds", None)
            if kinds is None or kind in kinds:
                chosen.append(detector)
        return tuple(chosen)

    # -- findings → alerts ----------------------------------------------------------------

    def _take(self, finding: Finding, received_ms: int) -> None:
        self.counters["findings"] += 1
        if self._allow.entity_allowed(finding):
            self.counters["findings_allowed"] += 1
            return
        if not self._project_known(finding.project_id):
            self.counters["findings_unknown_project"] += 1  # deleted meanwhile: its alerts went with it
            return
        key = (finding.project_id, finding.rule, finding.entity_kind, finding.entity_value)
        folded = self._folded.get(key)
        if folded is None:
            self._folded[key] = _Folded(finding, 1, received_ms)
        else:
            folded.finding = _fold(folded.finding, finding)
            folded.times += 1

    def _flush_folded(self) -> None:
        """Write the folded findings as alerts (one transaction), then decisions and sinks for them."""
        self._flushed_at = time.monotonic()
        if not self._folded:
            return
        folded = list(self._folded.values())
        self._folded.clear()
        now_ms = int(self._clock() * 1000)
        try:
            written = security.upsert_alerts(
                self.meta, [(item.finding, item.times) for item in folded], now_ms, self.cooldown_ms
            )
        except Exception:
            self.counters["store_errors"] += 1
            self._trouble("store", "could not write %d alerts", len(folded), exc_info=True)
            return
        done_ms = int(self._clock() * 1000)
        new_alerts: list[security.Alert] = []
        blocks: list[tuple[int, str, str, str, str, int | None, str]] = []
        for item, (alert, is_new) in zip(folded, written, strict=True):
            finding = item.finding
            if is_new:
                self.counters["alerts_raised"] += 1
                self.counters["alerts_merged"] += item.times - 1
                self._alert_latency_ms.append(max(0, done_ms - item.received_ms))
                new_alerts.append(alert)
            else:
                self.counters["alerts_merged"] += item.times
            if self.auto_block and alert.severity in BLOCK_SEVERITIES and finding.entity_kind in BLOCK_SCOPES:
                scope = BLOCK_SCOPES[finding.entity_kind]
                reason = f"{finding.rule}: {finding.reasons[0]}" if finding.reasons else finding.rule
                match = finding.entity_value if scope == "net" else ""
                blocks.append((finding.project_id, scope, finding.entity_value, "block", reason, alert.id, match))
        if blocks:
            try:
                decisions = security.add_rule_decisions(self.meta, blocks, self.block_ttl_s, now_ms)
                self.counters["decisions"] += sum(1 for d in decisions if d.created_ms == now_ms)
            except Exception:
                self.counters["store_errors"] += 1
                self._trouble("store", "could not write %d rule decisions", len(blocks), exc_info=True)
        for alert in new_alerts:
            for listener in self._listeners:
                try:
                    listener(alert)
                except Exception:
                    self.counters["sink_errors"] += 1
                    self._trouble("sink", "an alert sink failed", exc_info=True)

    def _project_known(self, project_id: int) -> bool:
        """Does the project still exist? Capture took its batch, so one missing from the set is either new
        since the last reload (looked up now) or deleted since (looked up again at most every 0.5 s)."""
        if project_id in self._projects:
            return True
        now_s = self._clock()
        if now_s - self._missing.get(project_id, -1e18) < PROJECT_RECHECK_S:
            return False
        try:
            found = self.meta.project(project_id) is not None
        except Exception:
            self.counters["store_errors"] += 1
            self._trouble("store", "could not look up project %d", project_id, exc_info=True)
            return False
        if found:
            self._projects.add(project_id)
            self._missing.pop(project_id, None)
        else:
            if len(self._missing) >= 10_000:
                self._missing.clear()
            self._missing[project_id] = now_s
        return found

    def _refresh(self, now_ms: int) -> None:
        """Reload the allow-lists when an entry changed, and the project ids now and then."""
        now_s = now_ms / 1000
        try:
            if now_s - self._allow_checked >= ALLOWLIST_CHECK_S:
                self._allow_checked = now_s
                version = security.allow_entries_version(self.meta)
                if version != self._allow_version:
                    self._allow.load(security.all_allow_entries(self.meta))
                    self._allow_version = version
            if now_s - self._projects_checked >= PROJECTS_CHECK_S:
                self._projects_checked = now_s
                self._projects = {project.id for project in self.meta.projects()}
        except Exception:
            self.counters["store_errors"] += 1
            self._trouble("store", "could not read allow-lists or projects; using the last ones", exc_info=True)

    # -- cursor and retention ---------------------------------------------------------------

    def _read_cursor(self) -> int:
        try:
            return int(self._cursor_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            log.error("detection cursor %s is unreadable; starting from the segments the spool holds now",
                      self._cursor_path)
            return 0

    def _write_cursor(self, segment_id: int) -> None:
        self.cursor = segment_id
        write_file_durably(self._cursor_path, f"{segment_id}\n".encode(), durable=self._durable)

    def _cleanup(self) -> None:
        """Delete done/ segments already observed and older than the rebuild window."""
        self._cleaned = self._clock()
        oldest = self._clock() - self.rebuild_window_s
        try:
            entries = list(os.scandir(self.done_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            parsed = parse_segment_name(entry.name)
            if parsed is None or parsed[0] > self.cursor:
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < oldest:
                    os.unlink(entry.path)
                    self.counters["segments_deleted"] += 1

    # -- what it is doing -------------------------------------------------------------------

    def state_size(self) -> tuple[int, int]:
        """(entries, estimated bytes) of every detector's windowed state."""
        entries = size = 0
        for detector in self.detectors:
            for container in state_of(detector):
                entries += len(container)
                size += container.bytes_estimate()
        return entries, size

    def events_per_s(self) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._rate) if now - t <= _RATE_WINDOW_S]
        if not recent:
            return 0.0
        first_t, first_n = recent[0]
        if len(recent) == 1 or now - first_t <= 0:
            return 0.0
        return (self.counters["events"] - first_n) / (now - first_t)

    def behind(self) -> int:
        """Sealed segments not observed yet."""
        return len(self._segment_ids(after=self.cursor))

    def health(self) -> dict[str, Any]:
        entries, size = self.state_size()
        lags = list(self._lag_ms)
        latencies = list(self._alert_latency_ms)
        return {
            "detect_cursor": self.cursor,
            "detect_segments_behind": self.behind(),
            "detect_events_per_s": round(self.events_per_s(), 1),
            "detect_lag_ms": lags[-1] if lags else 0,
            "detect_lag_ms_p95": percentile(lags, 0.95),
            "detect_alert_latency_ms_p50": percentile(latencies, 0.50),
            "detect_alert_latency_ms_p95": percentile(latencies, 0.95),
            "detect_state_entries": entries,
            "detect_state_bytes": size,
            "detect_detectors": len(self.detectors),
            "detect_counters": dict(self.counters),
        }

    def _trouble(self, kind: str, message: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_log.get(kind, -1e18) < LOG_EVERY_S:
            return
        self._last_log[kind] = now
        log.error(message, *args, exc_info=exc_info)
