"""The running parts of one Hitmetrix node, composed from settings.

Owns the metadata store, the event store, the blob store, the spool, the
loader and the detection engine, and starts/stops them in order. The web
layer and the CLI use this; nothing here imports them.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hitmetrix.assets import AssetFetcher, AssetStore, AssetWorker
from hitmetrix.detect.process import DetectionProcess
from hitmetrix.loader import Loader
from hitmetrix.loader.rows import RecordingRow
from hitmetrix.settings import Settings
from hitmetrix.spool import Spool
from hitmetrix.spool.writer import DONE_DIR
from hitmetrix.store import accounts
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore, EventStore
from hitmetrix.store.meta import MetaStore, Project

log = logging.getLogger(__name__)

DEMO_PROJECT = "demo"


class ProjectCache:
    """Public key → project, cached so capture does not hit SQL per request.

    Unknown keys are remembered briefly too, so a flood of bad keys costs no queries.
    """

    def __init__(self, meta: MetaStore, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._meta = meta
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, Project | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, public_key: str) -> Project | None:
        now = self._clock()
        entry = self._entries.get(public_key)
        if entry is not None and now - entry[0] < self._ttl_s:
            return entry[1]
        project = self._meta.project_by_key(public_key)
        with self._lock:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[public_key] = (now, project)
        return project

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class Runtime:
    settings: Settings
    meta: MetaStore
    store: EventStore
    blobs: BlobStore
    spool: Spool
    loader: Loader
    projects: ProjectCache
    admin_token: str
    started: bool = field(default=False)
    # Wall clock (epoch seconds) for sign-in sessions and throttling; tests replace it.
    clock: Callable[[], float] = field(default_factory=lambda: time.time)
    # Captures the stylesheets, images and fonts of stored recordings (None: no capture).
    assets: AssetWorker | None = None
    # Runs the detectors over every sealed spool segment, in a process of its own (None: setting detect off).
    detection: DetectionProcess | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    def start(self) -> None:
        self.spool.add_seal_listener(self.loader.wake)
        if self.detection is not None:
            self.spool.add_seal_listener(self.detection.wake)
        self.spool.start()
        if self.detection is not None:
            self.detection.start()
        self.loader.start()
        if self.assets is not None:
            self.assets.start()
        self.started = True

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.spool.close()
        self.loader.stop()
        try:
            # What the spool sealed on close; recordings still in the inbox wait for the next start.
            self.loader.load_once(drain_recordings=False)
        except Exception:  # noqa: BLE001 - left in the spool, loaded at the next start
            log.exception("could not load every sealed segment at shutdown; they stay in the spool")
        if self.detection is not None:
            self.detection.stop()  # observes what the spool sealed on close, then writes its cursor
        if self.assets is not None:
            self.assets.stop()
        self.store.close()
        self.meta.close()

    def demo_project(self) -> Project:
        project = self.meta.project_by_name(DEMO_PROJECT)
        if project is None:
            project = self.meta.create_project(DEMO_PROJECT)
            for user in accounts.users(self.meta):  # admins made before the demo existed see it too
                if user.is_admin:
                    accounts.add_member(self.meta, project.id, user.id, "owner")
        return project


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / "admin-token"


def ensure_admin_token(data_dir: Path) -> str:
    """A local admin API token, readable only by the data directory's owner; the CLI uses it."""
    path = admin_token_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    token = "hm_at_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def private_data_dir(data_dir: Path) -> None:
    """Make the data directory the owner's alone: 0700, and files created from now on 0600.

    It holds recordings, events and the admin token. The umask covers what this
    process creates (spool, store, blobs, SQLite); group and other bits left on
    an older directory's files are taken off once here.
    """
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if mode & 0o077 and not os.path.islink(path):
                os.chmod(path, mode & 0o700)


def build_runtime(settings: Settings) -> Runtime:
    data_dir = Path(settings.data_dir).resolve()
    private_data_dir(data_dir)
    meta = MetaStore(settings.metadata_url, data_dir)
    store = ChdbStore(data_dir / "clickhouse")
    blobs = BlobStore(data_dir / "recordings")
    spool = Spool(
        data_dir / "spool",
        fsync=settings.spool_fsync,
        segment_max_bytes=settings.spool_segment_max_bytes,
        segment_max_age_s=settings.spool_segment_max_age_s,
    )
    loader = Loader(
        spool,
        store,
        blobs,
        data_dir=data_dir,
        max_batch_segments=settings.loader_max_batch_segments,
        poll_interval_s=settings.loader_poll_interval_s,
        max_chunk_json_bytes=settings.max_chunk_json_bytes,
        max_json_depth=settings.max_json_depth,
        project_bytes_per_round=settings.loader_project_bytes_per_round,
        append=lambda record: spool.append_blocking(record, 30.0),  # requeued quarantine items
        deleted_projects=meta.deleted_among,
    )
    assets = AssetWorker(
        AssetStore(data_dir / "assets"),
        AssetFetcher(),
        read_chunk=blobs.get,
        project_origins=lambda project_id: project_origins(meta, project_id),
    )

    def capture_assets(rows: list[RecordingRow]) -> None:
        # After each turn of stored chunks: a non-blocking hand-over (a full queue skips the chunk's assets).
        for row in rows:
            assets.enqueue(row.project_id, row.session_id, row.path)

    loader.chunk_worker.add_stored_listener(capture_assets)
    detection = build_detection(settings.replace(data_dir=data_dir), spool)
    return Runtime(
        settings=settings,
        meta=meta,
        store=store,
        blobs=blobs,
        spool=spool,
        loader=loader,
        projects=ProjectCache(meta),
        admin_token=ensure_admin_token(data_dir),
        assets=assets,
        detection=detection,
    )


def build_detection(settings: Settings, spool: Spool) -> DetectionProcess | None:
    """The detection engine (a child process of its own), with the spool retaining the segments the loader
    removes until detection is done with them (None with detection off)."""
    done_dir = spool.directory / DONE_DIR
    if not settings.detect:
        if done_dir.is_dir():  # kept while detection was on: nobody reads them now
            shutil.rmtree(done_dir, ignore_errors=True)
        return None
    spool.retain_removed_segments()
    return DetectionProcess(settings)


def project_origins(meta: MetaStore, project_id: int) -> list[str]:
    """The project's allowed origins ([] for a project that does not exist, or no longer)."""
    project = meta.project(project_id)
    return project.origins() if project is not None else []
