"""Probing and vulnerability scanning (OWASP OAT-014; CrowdSec http-probing, http-sensitive-files,
http-sqli-probing, http-xss-probing, http-path-traversal-probing, http-bad-user-agent).

Per address (entity: the address), on server ``request`` events:
- a burst of errors: ``detect_probing_error_paths`` distinct non-static paths answered 400, 403 or 404 within
  ``detect_probing_error_window_s`` — medium;
- sensitive paths (``/.env``, ``/.git/config``, ``/wp-admin``, ``/phpmyadmin``, ``/server-status``, backups
  and dumps …): ``detect_probing_sensitive_paths`` distinct ones within ``detect_probing_window_s`` — high;
- injection patterns (SQL, XSS, path traversal, template) in the path or query: ``detect_probing_injections``
  requests within ``detect_probing_window_s`` — high. Capture masks query values before the spool, so it
  matches what the stored URL keeps (path, query keys) and the pattern kinds capture found in the raw query
  (``props["injection"]``, see ``injection_kinds``);
- a scanner's user agent (sqlmap, nikto, nuclei, Hydra …): ``detect_probing_scanner_requests`` requests — high.
Ignores verified crawlers, static files that are missing, a person who hits a dead link or two, and searches
with quotes or angle brackets that form no attack pattern.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from hitmetrix.detect.detectors._common import (
    Evidence,
    finding,
    ip_entity,
    is_static,
    max_entries,
    path_of,
    user_agent_match,
    window_text,
)
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, SlidingCounter, Throttle

RULE = "probing"
ERROR_STATUSES = frozenset({400, 403, 404})
# Sensitive paths, matched by whole path segment (a set lookup each, not a regex over every path):
# hidden files and folders (/.env, /.git/config), admin panels and their scripts, server status pages,
# framework debug endpoints, and backups or dumps by their extension.
SENSITIVE_HIDDEN = frozenset(
    {".env", ".git", ".svn", ".hg", ".bzr", ".ds_store", ".htaccess", ".htpasswd", ".aws", ".ssh", ".docker"}
    | {".npmrc", ".vscode", ".idea", ".env.local", ".env.production", ".git-credentials", ".bash_history"}
)
SENSITIVE_SEGMENTS = frozenset(
    {"wp-admin", "wp-login.php", "wp-config.php", "xmlrpc.php", "phpmyadmin", "pma", "myadmin", "server-status"}
    | {"server-info", "cgi-bin", "actuator", "phpinfo.php", "info.php", "config.php", "web.config", "phpunit"}
    | {"id_rsa", "passwd", "shadow", "backup", "backups", "dump", "admin.php", "adminer.php", "elmah.axd"}
    | {"_profiler", "telescope", "solr", "jmx-console", "manager", "console", "debug"}
)
BACKUP_SUFFIXES = (".bak", ".old", ".orig", ".swp", ".sql", ".sql.gz", ".tar.gz", ".tgz", ".7z", ".rar", "~")
INJECTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "sql",
        re.compile(
            r"['\"]\s*(?:or|and)\s+['\"\w]+\s*(?:=|like)|union(?:\s|/\*.*?\*/)+(?:all\s+)?select|"
            r"\b(?:sleep|benchmark|pg_sleep|waitfor\s+delay)\s*\(|;\s*(?:drop|insert|update|delete|select)\s|"
            r"information_schema|'\s*--",
            re.IGNORECASE,
        ),
    ),
    (
        "xss",
        re.compile(
            r"<\s*/?\s*(?:script|iframe|svg|img|body)\b|javascript\s*:|\bon(?:error|load|mouseover|focus|click)\s*=|"
            r"document\.cookie|\balert\s*\(",
            re.IGNORECASE,
        ),
    ),
    ("path_traversal", re.compile(r"\.\.[/\\]|/etc/(?:passwd|shadow)|c:\\windows|\x00", re.IGNORECASE)),
    ("template", re.compile(r"\{\{.*?\}\}|\$\{.*?\}|<%=|\{%.*?%\}|#\{.*?\}")),
)
# Every pattern above needs one of these (raw or percent-encoded): most URLs are dismissed by this one scan.
_MAY_INJECT = re.compile(r"[%'\"<>{}$;(+\\\x00]|\.\.")
SCANNER_USER_AGENTS = re.compile(
    r"sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|dirbuster|gobuster|ffuf|feroxbuster|acunetix|netsparker|"
    r"openvas|w3af|hydra|zmeu|nessus|jaeles|whatweb|wfuzz|arachni|skipfish|morfeus|fimap|havij|commix|xsstrike|"
    r"burp|qualys|nmap scripting engine",
    re.IGNORECASE,
)


def is_sensitive(path: str) -> bool:
    lower = path.lower()
    if lower.endswith(BACKUP_SUFFIXES):
        return True
    for segment in lower.split("/"):
        if segment in SENSITIVE_SEGMENTS:
            return True
        if segment.startswith(".") and (segment in SENSITIVE_HIDDEN or segment.startswith(".env")):
            return True
    return False


def injection_kinds(text: str) -> tuple[str, ...]:
    """The injection kinds (sql, xss, path_traversal, template) a raw path or query shows; () for none.

    Capture may call it on the raw query before masking and put the result in ``props["injection"]``.
    """
    if not text or not _MAY_INJECT.search(text):
        return ()
    decoded = unquote_plus(unquote_plus(text)) if "%" in text else unquote_plus(text)
    return tuple(kind for kind, pattern in INJECTIONS if pattern.search(decoded))


class ProbingDetector:
    rule = RULE
    kinds = frozenset({"request"})  # the engine gives it server requests only

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.error_window_s = float(settings.detect_probing_error_window_s)
        self.window_s = float(settings.detect_probing_window_s)
        self.error_threshold = int(settings.detect_probing_error_paths)
        self.sensitive_threshold = int(settings.detect_probing_sensitive_paths)
        self.injection_threshold = int(settings.detect_probing_injections)
        self.scanner_threshold = int(settings.detect_probing_scanner_requests)
        self.errors = DistinctCounter(self.error_window_s, n, max_distinct_per_entity=500)
        self.sensitive = DistinctCounter(self.window_s, n, max_distinct_per_entity=500)
        self.injections = SlidingCounter(self.window_s, n)
        self.injection_types = DistinctCounter(self.window_s, n, max_distinct_per_entity=8)
        self.scanner = SlidingCounter(self.window_s, n)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if obs.kind != "request" or not obs.ip_key or obs.crawler.endswith(":verified"):
            return []
        key = (obs.project_id, obs.ip_key)
        path = path_of(obs.url)
        found: list[Finding] = []
        if obs.status in ERROR_STATUSES and not is_static(path):
            self.evidence.add(key, obs.session_id, obs.ts_ms)
            errors = self.errors.add(key, path, obs.ts_ms)
            if errors >= self.error_threshold and self._once(obs, "errors"):
                reason = (
                    f"{errors} distinct paths answered 400/403/404 in {window_text(self.error_window_s)} "
                    f"(threshold {self.error_threshold})."
                )
                found.append(self._finding(obs, "medium", reason, {"error_paths": errors}))
        if is_sensitive(path):
            self.evidence.add(key, obs.session_id, obs.ts_ms)
            hits = self.sensitive.add(key, path, obs.ts_ms)
            if hits >= self.sensitive_threshold and self._once(obs, "sensitive"):
                reason = (
                    f"{hits} distinct sensitive paths requested in {window_text(self.window_s)}, the latest "
                    f"{path[:80]!r} (threshold {self.sensitive_threshold})."
                )
                found.append(self._finding(obs, "high", reason, {"sensitive_paths": hits}))
        kinds = set(injection_kinds(obs.url))
        flagged = obs.props.get("injection")
        if isinstance(flagged, list):
            kinds.update(str(k) for k in flagged)
        if kinds:
            self.evidence.add(key, obs.session_id, obs.ts_ms)
            hits = self.injections.add(key, obs.ts_ms)
            for kind in kinds:
                self.injection_types.add(key, kind, obs.ts_ms)
            if hits >= self.injection_threshold and self._once(obs, "injection"):
                types = ", ".join(sorted(str(v) for v in self.injection_types.values(key, obs.ts_ms)))
                reason = (
                    f"{hits} requests with injection patterns ({types}) in {window_text(self.window_s)} "
                    f"(threshold {self.injection_threshold})."
                )
                found.append(self._finding(obs, "high", reason, {"injections": hits}))
        scanner = user_agent_match(SCANNER_USER_AGENTS, obs.user_agent)
        if scanner:
            self.evidence.add(key, obs.session_id, obs.ts_ms)
            hits = self.scanner.add(key, obs.ts_ms)
            if hits >= self.scanner_threshold and self._once(obs, "scanner"):
                reason = (
                    f"{hits} requests from the scanner {scanner!r} (its user agent) in "
                    f"{window_text(self.window_s)} (threshold {self.scanner_threshold})."
                )
                found.append(self._finding(obs, "high", reason, {"scanner_requests": hits}))
        return found

    def _once(self, obs: Observation, check: str) -> bool:
        return self.throttle.ready((obs.project_id, check, obs.ip_key), obs.ts_ms)

    def _finding(self, obs: Observation, severity: str, reason: str, numbers: dict[str, float]) -> Finding:
        sessions = self.evidence.sessions((obs.project_id, obs.ip_key))
        return finding(RULE, obs, severity, ip_entity(obs), [reason], numbers, sessions)
