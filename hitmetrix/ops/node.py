"""The node serving a data directory: the marker file ``serve`` writes, and whether that node answers.

Only one process may hold a data directory's spool and store (directory
locks), so the CLI asks a running node rather than opening them itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

SERVER_FILE = "server.json"
HEALTH_TIMEOUT_S = 2.0


def server_file(data_dir: Path) -> Path:
    """Where ``serve`` writes ``{"url": …, "pid": …}`` while it runs."""
    return Path(data_dir) / SERVER_FILE


def running_server(data_dir: Path) -> str | None:
    """The URL of the node serving ``data_dir`` when its marker is there and it answers /healthz, else None."""
    try:
        info = json.loads(server_file(data_dir).read_text())
        url = str(info["url"])
        httpx.get(url + "/healthz", timeout=HEALTH_TIMEOUT_S).raise_for_status()
        return url
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None
