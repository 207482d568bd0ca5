"""The Hitmetrix server the scenarios attack: a real ``hitmetrix serve --demo`` child process on 127.0.0.1.

It trusts 127.0.0.1 as a proxy (``--trusted-proxies``), so every simulated client's X-Forwarded-For is its
address, both for capture and for the demo site's SDK middleware (which is built with the server's own
``trusted_proxies`` setting). Crawler checks answer from a hosts-style file (``crawler_dns_file``) that names
the verified crawler's address. Detector settings may be overridden (``HITMETRIX_DETECT_…``) where a real
attack takes hours. ``alerts()`` reads the demo project's alerts through the security JSON API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """``hitmetrix serve --demo`` on a free port with ``settings`` (setting name → value) as environment."""

    def __init__(self, data_dir: Path, settings: dict[str, str], dns_lines: list[str]) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"hitmetrix-{self.port}.log"
        self.dns_path = data_dir.parent / "crawler-dns.hosts"
        self.dns_path.write_text("\n".join(dns_lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.project_id = 0
        self.public_key = ""
        self._api: httpx.Client | None = None

    def start(self, timeout_s: float = 90.0) -> DemoServer:
        env = {**os.environ, "HITMETRIX_LOG_LEVEL": "warning", "HITMETRIX_CRAWLER_DNS_FILE": str(self.dns_path)}
        env.update({"HITMETRIX_" + name.upper(): value for name, value in self.settings.items()})
        cmd = [sys.executable, "-m", "hitmetrix.cli", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--demo", "--trusted-proxies", "127.0.0.1"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not healthy within {timeout_s} s: {self.log_tail()}")
            time.sleep(0.1)
        token = (self.data_dir / "admin-token").read_text().strip()
        self._api = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
        # The demo project is made on the site's first request.
        httpx.get(self.url + "/demo/", timeout=30.0, headers={"X-Forwarded-For": "127.0.0.1"}).raise_for_status()
        projects = self._api.get("/api/v1/projects").raise_for_status().json()
        items = projects["projects"] if isinstance(projects, dict) else projects
        demo = next(p for p in items if p["name"] == "demo")
        self.project_id = int(demo["id"])
        self.public_key = str(demo.get("public_key") or demo.get("key") or "")
        if not self.public_key:
            detail = self._api.get(f"/api/v1/projects/{self.project_id}").raise_for_status().json()
            self.public_key = str(detail.get("public_key") or detail.get("key"))
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of the demo project (paged, newest first)."""
        assert self._api is not None
        found: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(100):
            params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            page = self._api.get(f"/api/v1/projects/{self.project_id}/security/alerts", params=params)
            page.raise_for_status()
            body = page.json()
            found += body["alerts"]
            cursor = body.get("next_cursor") or ""
            if not cursor:
                break
        return found

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.url + "/healthz", timeout=5.0).json()
        return answer

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None
