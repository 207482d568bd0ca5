"""Captured assets under the data directory: content-addressed files and a per-project index in SQLite.

Files: ``assets/blobs/ab/abcdef…`` named by the sha256 of their bytes, so two
URLs (or two projects) with the same bytes share one file; written atomically,
``0600``. Index (``assets/index.sqlite3``, stdlib sqlite3, one connection behind
a lock, so any thread may use it):

- ``assets``: per project and URL, the latest outcome: the sha256 and type
  of what was fetched, or the error, when, and when to try again. A URL
  fetched OK is not fetched again for ``REFRESH_AFTER_S``; a failure is
  retried after ``RETRY_AFTER_S[attempt]``, then once per refresh period.
- ``project_blobs``: which contents a project may read, with their type and
  the URL they came from (a stylesheet's relative URLs resolve against it).
  A refetch that finds new bytes adds a row; old ones stay readable.
- ``session_assets``: the URLs a session's recording references, each pinned
  to the content it had when the session was captured, so an old replay keeps
  showing what its visitor saw after the site changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REFRESH_AFTER_S = 24 * 3600
RETRY_AFTER_S = (60, 10 * 60, 3600)
MAX_URLS_PER_SESSION = 2000
MAX_ERROR_CHARS = 300
_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    project_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,            -- 'ok' or 'failed'
    sha256 TEXT,                     -- the last good content (kept when a refetch fails)
    content_type TEXT,
    error TEXT,
    fetched_at REAL NOT NULL,        -- the last attempt, epoch seconds
    attempts INTEGER NOT NULL,       -- failures in a row
    next_attempt_at REAL NOT NULL,
    PRIMARY KEY (project_id, url)
);
CREATE TABLE IF NOT EXISTS project_blobs (
    project_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (project_id, sha256)
);
CREATE TABLE IF NOT EXISTS session_assets (
    project_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    url TEXT NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (project_id, session_id, url)
);
"""


@dataclass(frozen=True)
class AssetEntry:
    url: str
    status: str
    sha256: str | None
    content_type: str | None
    error: str | None
    fetched_at: float
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True)
class StoredAsset:
    sha256: str
    content_type: str
    url: str


@dataclass(frozen=True)
class SessionAssets:
    """A session's URLs: captured (url → sha256), failed (url → reason), and not fetched yet."""

    captured: dict[str, str]
    failed: dict[str, str]
    pending: int


class AssetStore:
    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None  # opened on first use: building a runtime opens no file

    # --- files ---------------------------------------------------------------------------------------

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def put_blob(self, body: bytes) -> str:
        """Keep ``body`` once; returns its sha256."""
        sha256 = hashlib.sha256(body).hexdigest()
        path = self._blob_path(sha256)
        if path.exists():
            return sha256
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f"{sha256}.tmp{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return sha256

    def read_blob(self, sha256: str) -> bytes:
        return self._blob_path(sha256).read_bytes()

    def blob_count(self) -> int:
        blobs = self.root / "blobs"
        return sum(1 for p in blobs.glob("*/*") if ".tmp" not in p.name) if blobs.exists() else 0

    # --- the index -----------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.root / "index.sqlite3"
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def entry(self, project_id: int, url: str) -> AssetEntry | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT url, status, sha256, content_type, error, fetched_at, attempts, next_attempt_at "
                    "FROM assets WHERE project_id = ? AND url = ?",
                    (project_id, url),
                )
                .fetchone()
            )
        return AssetEntry(*row) if row else None

    def due(self, project_id: int, url: str) -> bool:
        """Should ``url`` be fetched now: never tried, or its refresh or retry time has come."""
        found = self.entry(project_id, url)
        return found is None or found.next_attempt_at <= self.clock()

    def record_ok(self, project_id: int, url: str, sha256: str, content_type: str) -> None:
        now = self.clock()
        with self._lock:
            db = self._conn()
            with _transaction(db):
                db.execute(
                    "INSERT INTO assets VALUES (?, ?, 'ok', ?, ?, NULL, ?, 0, ?) "
                    "ON CONFLICT (project_id, url) DO UPDATE SET status = 'ok', sha256 = excluded.sha256, "
                    "content_type = excluded.content_type, error = NULL, fetched_at = excluded.fetched_at, "
                    "attempts = 0, next_attempt_at = excluded.next_attempt_at",
                    (project_id, url, sha256, content_type, now, now + REFRESH_AFTER_S),
                )
                db.execute(
                    "INSERT OR IGNORE INTO project_blobs VALUES (?, ?, ?, ?)", (project_id, sha256, content_type, url)
                )

    def record_failure(self, project_id: int, url: str, error: str) -> None:
        """A failed fetch; a URL that was fetched OK before keeps its content and stays 'ok'."""
        now = self.clock()
        error = error[:MAX_ERROR_CHARS]
        with self._lock:
            db = self._conn()
            row = db.execute(
                "SELECT status, attempts FROM assets WHERE project_id = ? AND url = ?", (project_id, url)
            ).fetchone()
            attempts = (row[1] if row else 0) + 1
            wait_s = RETRY_AFTER_S[attempts - 1] if attempts <= len(RETRY_AFTER_S) else REFRESH_AFTER_S
            if row is not None and row[0] == "ok":
                db.execute(
                    "UPDATE assets SET error = ?, fetched_at = ?, attempts = ?, next_attempt_at = ? "
                    "WHERE project_id = ? AND url = ?",
                    (error, now, attempts, now + wait_s, project_id, url),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO assets VALUES (?, ?, 'failed', NULL, NULL, ?, ?, ?, ?)",
                    (project_id, url, error, now, attempts, now + wait_s),
                )

    def stored(self, project_id: int, sha256: str) -> StoredAsset | None:
        """Content this project may read: its type and the URL it came from; None for any other."""
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT sha256, content_type, url FROM project_blobs WHERE project_id = ? AND sha256 = ?",
                    (project_id, sha256),
                )
                .fetchone()
            )
        return StoredAsset(*row) if row else None

    def current(self, project_id: int, urls: Iterable[str]) -> dict[str, str]:
        """url → sha256 of the content now kept for each of ``urls`` that has any."""
        out: dict[str, str] = {}
        with self._lock:
            db = self._conn()
            for url in urls:
                row = db.execute(
                    "SELECT sha256 FROM assets WHERE project_id = ? AND url = ? AND status = 'ok'", (project_id, url)
                ).fetchone()
                if row:
                    out[url] = row[0]
        return out

    # --- sessions ------------------------------------------------------------------------------------

    def add_session_urls(self, project_id: int, session_id: str, urls: Iterable[str]) -> None:
        """Remember that the session references ``urls`` (up to ``MAX_URLS_PER_SESSION`` in all)."""
        with self._lock:
            db = self._conn()
            (count,) = db.execute(
                "SELECT count(*) FROM session_assets WHERE project_id = ? AND session_id = ?", (project_id, session_id)
            ).fetchone()
            room = MAX_URLS_PER_SESSION - count
            rows = [(project_id, session_id, url) for url in dict.fromkeys(urls)]
            if room > 0 and rows:
                with _transaction(db):
                    db.executemany("INSERT OR IGNORE INTO session_assets VALUES (?, ?, ?, NULL)", rows[:room])

    def pin_session(self, project_id: int, session_id: str) -> None:
        """Give the session's URLs that have none yet the content now kept for them."""
        with self._lock:
            self._conn().execute(
                "UPDATE session_assets SET sha256 = (SELECT a.sha256 FROM assets a WHERE a.project_id = "
                "session_assets.project_id AND a.url = session_assets.url AND a.status = 'ok') "
                "WHERE project_id = ? AND session_id = ? AND sha256 IS NULL",
                (project_id, session_id),
            )

    def session_assets(self, project_id: int, session_id: str) -> SessionAssets:
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT s.url, COALESCE(s.sha256, CASE WHEN a.status = 'ok' THEN a.sha256 END), a.status, a.error "
                    "FROM session_assets s LEFT JOIN assets a ON a.project_id = s.project_id AND a.url = s.url "
                    "WHERE s.project_id = ? AND s.session_id = ? ORDER BY s.url",
                    (project_id, session_id),
                )
                .fetchall()
            )
        captured: dict[str, str] = {}
        failed: dict[str, str] = {}
        pending = 0
        for url, sha256, status, error in rows:
            if sha256:
                captured[url] = sha256
            elif status == "failed":
                failed[url] = error or "not fetched"
            else:
                pending += 1
        return SessionAssets(captured, failed, pending)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction (the connection is in autocommit mode: otherwise every statement would be one)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
