"""``hitmetrix doctor``: check a data directory and say what is wrong with it, one line per check.

Each check answers OK, WARN (works, but look at it) or FAIL (broken, or will
break), with a hint saying what to do. The exit status follows the usual
convention of monitoring checks: 0 all OK, 1 some WARN, 2 some FAIL.

It reads the directory and changes nothing. Only one process may open a data
directory's ClickHouse store (chDB locks it), so when a server runs on the
directory the doctor asks it (``/healthz`` with the local admin token) about
the store instead of opening it; the rest (files, spool, quarantine, inbox,
metadata) it reads itself either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from hitmetrix.loader.loader import INBOX_DIR, QUARANTINE_DIR
from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.ops import node
from hitmetrix.ops.stores import known_metadata_revision, metadata_status, store_status
from hitmetrix.spool import Spool

Status = Literal["OK", "WARN", "FAIL"]
EXIT_CODES: dict[Status, int] = {"OK": 0, "WARN": 1, "FAIL": 2}
SPOOL_DIR = "spool"
STORE_DIR = "clickhouse"
ADMIN_TOKEN_FILE = "admin-token"
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
DASHBOARD_BUNDLES = ("replay.js", "sessions.js", "team.js", "onboarding.js", "live.js")

# Free space: below these the spool soon refuses batches (503) and the store its inserts.
DISK_FAIL_BYTES = 512 * 1024**2
DISK_WARN_BYTES = 5 * 1024**3
DISK_WARN_FRACTION = 0.10
# A running loader keeps up within seconds; this far behind, something holds it back.
LAG_WARN_S = 60.0
LAG_FAIL_S = 600.0
INBOX_WARN_S = 300.0
SHOWN_PATHS = 3


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<13} {self.detail}"
        return f"{text} — {self.hint}" if self.hint and self.status != "OK" else text


@dataclass
class Doctor:
    """What the checks share: the directory, how to reach its metadata, and the running server if any."""

    data_dir: Path
    metadata_url: str = ""
    server_url: str | None = None
    server_health: dict[str, Any] | None = None
    server_error: str = ""
    clock: Callable[[], float] = time.time
    checks: list[Check] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.server_url is not None

    def cli(self, command: str) -> str:
        return f"hitmetrix {command} --data-dir {self.data_dir}"


def examine(data_dir: Path, metadata_url: str = "", *, ask_server: bool = True) -> list[Check]:
    """Every check of ``data_dir``, in order (``ask_server=False``: as if no server ran, for tests)."""
    doctor = Doctor(Path(data_dir).resolve(), metadata_url)
    if not doctor.data_dir.is_dir():
        hint = f"create it by starting the server once: hitmetrix serve --data-dir {doctor.data_dir}"
        return [Check("data dir", "FAIL", f"{doctor.data_dir} is not a directory", hint)]
    if ask_server:
        _find_server(doctor)
    checks = [
        _server(doctor),
        _permissions(doctor),
        _disk(doctor),
        _admin_token(doctor),
        _spool(doctor),
        _quarantine(doctor),
        _inbox(doctor),
        *_metadata(doctor),
        *_store(doctor),
        _tracker(),
        _dashboard(),
    ]
    return checks


def exit_code(checks: list[Check]) -> int:
    return max((EXIT_CODES[c.status] for c in checks), default=0)


def report(checks: list[Check]) -> str:
    worst = {0: "everything is OK", 1: "some checks warn", 2: "some checks FAIL"}[exit_code(checks)]
    return "\n".join([*(c.line() for c in checks), f"doctor: {worst}"])


def as_json(checks: list[Check]) -> str:
    return json.dumps([dataclasses.asdict(c) for c in checks], ensure_ascii=False)


# --- the running server ------------------------------------------------------------------------


def _find_server(doctor: Doctor) -> None:
    url = node.running_server(doctor.data_dir)
    if url is None:
        return
    doctor.server_url = url
    try:
        token = (doctor.data_dir / ADMIN_TOKEN_FILE).read_text().strip()
        answer = httpx.get(url + "/healthz", headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
        answer.raise_for_status()
        doctor.server_health = answer.json()
    except (OSError, ValueError, httpx.HTTPError) as exc:
        doctor.server_error = f"{type(exc).__name__}: {exc}"


def _server(doctor: Doctor) -> Check:
    marker = node.server_file(doctor.data_dir)
    if doctor.running:
        if doctor.server_health is None:
            detail = f"running at {doctor.server_url}, but /healthz failed: {doctor.server_error}"
            return Check("server", "WARN", detail)
        return Check("server", "OK", f"running at {doctor.server_url}")
    if marker.exists():
        return Check(
            "server",
            "WARN",
            f"{marker.name} names a server that does not answer (stopped uncleanly?)",
            "start it again (hitmetrix serve), or delete the file if no server should run here",
        )
    return Check("server", "OK", "not running: checked the data directory itself")


# --- files -------------------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    yield str(root), os.lstat(root)
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            try:
                yield path, os.lstat(path)
            except FileNotFoundError:  # removed meanwhile (the loader at work)
                continue


def _permissions(doctor: Doctor) -> Check:
    """Recordings, events and the admin token are the owner's alone: directories 0700, files 0600."""
    loose: list[str] = []
    foreign: list[str] = []
    count = 0
    uid = os.getuid()
    for path, info in _walk(doctor.data_dir):
        if stat.S_ISLNK(info.st_mode):
            continue
        count += 1
        if info.st_mode & 0o077:
            loose.append(f"{os.path.relpath(path, doctor.data_dir)} ({stat.S_IMODE(info.st_mode):04o})")
        if info.st_uid != uid:
            foreign.append(os.path.relpath(path, doctor.data_dir))
    if loose:
        shown = ", ".join(loose[:SHOWN_PATHS]) + (" …" if len(loose) > SHOWN_PATHS else "")
        return Check(
            "permissions",
            "FAIL",
            f"{len(loose)} of {count} entries are open to group or others: {shown}",
            f"chmod -R go= {doctor.data_dir} (hitmetrix serve also takes those bits off at start)",
        )
    if foreign:
        return Check(
            "permissions",
            "WARN",
            f"{len(foreign)} entries belong to another user than you (uid {uid}), e.g. {foreign[0]}",
            "run Hitmetrix (and the doctor) as the user that owns the data directory",
        )
    return Check("permissions", "OK", f"{count} entries, directories 0700 and files 0600 or stricter")


def _disk(doctor: Doctor) -> Check:
    usage = shutil.disk_usage(doctor.data_dir)
    fraction = usage.free / usage.total if usage.total else 0.0
    detail = f"{_size(usage.free)} free of {_size(usage.total)} ({fraction:.0%})"
    hint = "free some space or move the data directory: a full disk makes capture answer 503 and the loader wait"
    if usage.free < DISK_FAIL_BYTES:
        return Check("disk", "FAIL", detail, hint)
    if usage.free < DISK_WARN_BYTES or fraction < DISK_WARN_FRACTION:
        return Check("disk", "WARN", detail, hint)
    return Check("disk", "OK", detail)


def _admin_token(doctor: Doctor) -> Check:
    path = doctor.data_dir / ADMIN_TOKEN_FILE
    hint = f"hitmetrix serve --data-dir {doctor.data_dir} creates it (the CLI uses it to ask the server)"
    try:
        token = path.read_text().strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return Check("admin token", "FAIL", f"{path.name} is missing", hint)
    except OSError as exc:
        return Check("admin token", "FAIL", f"{path.name} cannot be read: {exc}", "run as the data directory's owner")
    if not token.startswith("hm_at_") or len(token) < 20:
        return Check("admin token", "FAIL", f"{path.name} does not hold a token", f"delete it; {hint}")
    if mode & 0o077:
        return Check("admin token", "FAIL", f"{path.name} is mode {mode:04o}", f"chmod 600 {path}")
    return Check("admin token", "OK", f"{path.name} present, mode {mode:04o}")


# --- data waiting ----------------------------------------------------------------------------------


def _spool(doctor: Doctor) -> Check:
    spool = Spool(doctor.data_dir / SPOOL_DIR)  # never started: reads the directory only, takes no lock
    count, oldest_s = spool.sealed_backlog()
    moved = spool.quarantined_files()
    detail = f"{count} sealed segments waiting" + (f", oldest {oldest_s:.0f} s" if count else "")
    if moved:
        return Check(
            "spool",
            "WARN",
            f"{detail}; {len(moved)} damaged files moved aside at start-up (spool/quarantine/)",
            "look at them, then delete them: their intact records were loaded (docs/operations.md)",
        )
    if not count:
        return Check("spool", "OK", detail)
    if not doctor.running:
        return Check("spool", "WARN", detail, "the server loads them when it starts: hitmetrix serve")
    if oldest_s > LAG_FAIL_S:
        return Check("spool", "FAIL", detail, "the loader is stuck: read the server log (store errors back it off)")
    if oldest_s > LAG_WARN_S:
        return Check("spool", "WARN", detail, "the loader is behind: see loader_counters in /healthz and the log")
    return Check("spool", "OK", detail)


def _quarantine(doctor: Doctor) -> Check:
    counts = Quarantine(doctor.data_dir / QUARANTINE_DIR).counts()
    total = sum(counts.values())
    if not total:
        return Check("quarantine", "OK", "no items")
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    return Check(
        "quarantine",
        "WARN",
        f"{total} items the loader could not store ({kinds})",
        f"{doctor.cli('quarantine list')}; requeue them once the cause is fixed (docs/operations.md)",
    )


def _inbox(doctor: Doctor) -> Check:
    """Recording chunks moved out of the spool and not stored yet (read here: the loader's queue is in memory)."""
    root = doctor.data_dir / INBOX_DIR
    count, size, oldest_mtime = 0, 0, None
    if root.is_dir():
        for project in os.scandir(root):
            if not project.name.isdigit() or not project.is_dir():
                continue
            for entry in os.scandir(project.path):
                if not entry.name.endswith(".chunk"):
                    continue
                try:
                    info = entry.stat()
                except FileNotFoundError:
                    continue
                count += 1
                size += info.st_size
                oldest_mtime = info.st_mtime if oldest_mtime is None else min(oldest_mtime, info.st_mtime)
    if not count:
        return Check("inbox", "OK", "no recording chunks waiting")
    age_s = max(0.0, doctor.clock() - (oldest_mtime or doctor.clock()))
    detail = f"{count} recording chunks ({_size(size)}) waiting, oldest {age_s:.0f} s"
    if not doctor.running:
        return Check("inbox", "WARN", detail, "the server stores them when it starts: hitmetrix serve")
    if age_s > INBOX_WARN_S:
        return Check("inbox", "WARN", detail, "recordings arrive faster than they are stored: see docs/operations.md")
    return Check("inbox", "OK", detail)


# --- stores -------------------------------------------------------------------------------------------


def _metadata(doctor: Doctor) -> list[Check]:
    status = metadata_status(doctor.metadata_url, doctor.data_dir)
    if status.error:
        return [Check("metadata", "FAIL", status.error, status.hint)]
    checks = [Check("metadata", "OK", f"opens ({status.where}), {status.projects} projects, {status.users} users")]
    name = "migrations"
    if status.current is not None and not known_metadata_revision(status.current):
        detail = f"at revision {status.current}, which this version does not know: a newer release made it"
        checks.append(Check(name, "FAIL", detail, "run that release (or a newer one) on this data directory"))
    elif status.current == status.head:
        checks.append(Check(name, "OK", f"metadata at the newest revision ({status.head})"))
    else:
        detail = f"metadata at revision {status.current or 'none'}, this version's newest is {status.head}"
        checks.append(Check(name, "WARN", detail, "the server upgrades it when it starts: hitmetrix serve"))
    return checks


def _store(doctor: Doctor) -> list[Check]:
    if doctor.running:
        reported = (doctor.server_health or {}).get("store")
        if not isinstance(reported, dict):
            why = doctor.server_error or "its /healthz has no store report (an older version?)"
            return [Check("store", "WARN", f"the running server did not report on the store: {why}")]
        status: dict[str, Any] = reported
        where = "asked the running server"
    else:
        path = doctor.data_dir / STORE_DIR
        if not path.is_dir():
            hint = f"the server creates it at its first start: hitmetrix serve --data-dir {doctor.data_dir}"
            return [Check("store", "FAIL", f"no ClickHouse store in {STORE_DIR}/", hint)]
        status = store_status(path)
        where = "opened it"
    if status.get("error"):
        return [Check("store", "FAIL", str(status["error"]), str(status.get("hint", "")))]
    checks = [Check("store", "OK", f"opens ({where}), {status.get('tables', 0)} tables")]
    name = "store schema"
    unknown, pending = status.get("unknown") or [], status.get("pending") or []
    if unknown:
        detail = f"the ledger has steps {unknown} this version does not know: a newer release made it"
        checks.append(Check(name, "FAIL", detail, "run that release (or a newer one) on this data directory"))
    elif pending:
        detail = f"at step {status.get('current') or 'none'}, steps {pending} not applied yet"
        checks.append(Check(name, "WARN", detail, "the server applies them when it starts: hitmetrix serve"))
    else:
        checks.append(Check(name, "OK", f"every schema step applied (at {status.get('current')})"))
    return checks


# --- built assets ----------------------------------------------------------------------------------


def _tracker() -> Check:
    path = STATIC_DIR / "hm.js"
    if not path.is_file() or not path.stat().st_size:
        return Check("tracker", "FAIL", "hm.js is not built: sites get 503 for the script tag", "make tracker")
    return Check("tracker", "OK", f"hm.js built ({_size(path.stat().st_size)})")


def _dashboard() -> Check:
    missing = [name for name in DASHBOARD_BUNDLES if not (STATIC_DIR / "dashboard" / name).is_file()]
    if missing:
        return Check("dashboard", "FAIL", f"not built: {', '.join(missing)}", "make dashboard")
    return Check("dashboard", "OK", f"{len(DASHBOARD_BUNDLES)} bundles built")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
