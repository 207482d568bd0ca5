"""``hitmetrix ingest-log``: where to send (a local project's running server, or a URL and key), then run."""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from hitmetrix.ingest.follow import LogIngest
from hitmetrix.ingest.rules import AuthRule, parse_rules
from hitmetrix.ingest.sender import BatchSender, KeyRefused

log = logging.getLogger(__name__)


def target_of_project(
    data_dir: Path, metadata_url: str, name: str, find_server: Callable[[Path], str | None] | None = None
) -> tuple[str, str, list[AuthRule]]:
    """(server URL, server key, auth rules) of a project of this data directory; ValueError when not found.

    ``find_server`` gives the URL of the server running on ``data_dir`` (default: its marker file).
    """
    from hitmetrix.ops.node import running_server
    from hitmetrix.store.meta import MetaStore

    meta = MetaStore(metadata_url, data_dir)
    try:
        project = meta.project_by_name(name)
    finally:
        meta.close()
    if project is None:
        raise ValueError(f"no project named {name!r}")
    url = (find_server or running_server)(data_dir)
    if url is None:
        raise ValueError("no running server for this data directory: start `hitmetrix serve`, or pass --server")
    return url, project.server_key, parse_rules(project.auth_rules or "")


def default_state_path(data_dir: Path, log_path: Path) -> Path:
    digest = hashlib.sha256(str(log_path.resolve()).encode()).hexdigest()[:16]
    return data_dir / "ingest" / f"{log_path.name}-{digest}.json"


def run_ingest(
    log_path: Path,
    fmt: str,
    *,
    server_url: str,
    server_key: str,
    rules: list[AuthRule],
    state_path: Path,
    follow: bool,
) -> int:
    sender = BatchSender(server_url, server_key)
    ingest = LogIngest(log_path, fmt, sender, state_path, rules)
    previous = signal.signal(signal.SIGTERM, lambda *_: ingest.stop())
    try:
        stats = ingest.run(follow=follow)
    except KeyRefused as exc:
        print(f"error: the server refused the key: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        stats = ingest.stats
    finally:
        signal.signal(signal.SIGTERM, previous)
        sender.close()
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.skipped.items())) or "none"
    print(
        f"ingest-log: {stats.lines} lines, {stats.events} events ({stats.auth_events} auth); skipped: {skipped}; "
        f"refused by the server: {sender.refused_events} events, {sender.refused_batches} batches",
        file=sys.stderr,
    )
    return 0
