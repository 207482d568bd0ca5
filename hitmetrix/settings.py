"""Every setting declared once: name, type, default, help.

The CLI flags, the ``HITMETRIX_*`` environment variables and docs/settings.md
are all generated from ``SETTINGS``; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", Path, Path("./data"), "Directory holding the spool, store, recordings and metadata."),
    Setting("host", str, "127.0.0.1", "Address to listen on."),
    Setting("port", int, 8000, "Port to listen on."),
    Setting("metadata_url", str, "", "SQLAlchemy URL for metadata; empty means SQLite in the data directory."),
    Setting("trusted_proxies", str, "", "Comma-separated IPs/CIDRs whose X-Forwarded-For is trusted."),
    Setting("max_body_bytes", int, 1_048_576, "Largest capture request body accepted, as sent."),
    Setting("max_decompressed_bytes", int, 8_388_608, "Largest capture body after gzip decompression."),
    Setting("max_events_per_batch", int, 1000, "Most events accepted in one batch."),
    Setting("max_chunk_json_bytes", int, 8_388_608, "Largest recording chunk accepted, once decompressed."),
    Setting(
        "max_recording_bytes_per_batch",
        int,
        16_777_216,
        "Most decompressed recording bytes (all chunks together) one capture request may carry.",
    ),
    Setting("max_json_depth", int, 512, "Deepest nesting of arrays and objects accepted in a body or a chunk."),
    Setting("rate_limit_rps", float, 50.0, "Capture requests per second allowed per client IP and project."),
    Setting("rate_limit_burst", int, 200, "Capture requests a client may burst above the rate."),
    Setting(
        "spool_fsync",
        str,
        "always",
        "When the spool fsyncs: 'always' (ack after fsync, group commit), "
        "'interval' (ack after write, fsync every 100 ms), 'never' (tests only).",
        ("always", "interval", "never"),
    ),
    Setting("spool_segment_max_bytes", int, 16_777_216, "Seal a spool segment when it reaches this size."),
    Setting("spool_segment_max_age_s", float, 1.0, "Seal a non-empty spool segment after this many seconds."),
    Setting("loader_poll_interval_s", float, 0.2, "How often the loader looks for sealed segments."),
    Setting("loader_max_batch_segments", int, 64, "Most sealed segments loaded in one store insert."),
    Setting(
        "loader_project_bytes_per_round",
        int,
        33_554_432,
        "Recording bytes (decompressed) the loader works through for one project before turning to the others.",
    ),
    Setting("geoip", bool, True, "Look up country and ASN of client IPs in the bundled offline database."),
    Setting("demo", bool, False, "Create a demo project and serve the self-recording demo site at /demo/."),
    Setting("log_level", str, "info", "Log level.", ("debug", "info", "warning", "error")),
    Setting("log_format", str, "text", "Log lines as plain text or as one JSON object each.", ("text", "json")),
    Setting("metrics_token", str, "", "Bearer token that /metrics requires; empty switches /metrics off."),
    Setting("smtp_host", str, "", "Mail server for invitations and reset links; empty: links are only shown to copy."),
    Setting("smtp_port", int, 587, "Mail server port."),
    Setting("smtp_user", str, "", "Mail server user name; empty: no login."),
    Setting("smtp_password", str, "", "Mail server password."),
    Setting("smtp_from", str, "", "Sender address of mails Hitmetrix sends."),
    Setting("smtp_starttls", bool, True, "Use STARTTLS with the mail server."),
)

_BY_NAME = {s.name: s for s in SETTINGS}
ENV_PREFIX = "HITMETRIX_"


def _coerce(setting: Setting, value: Any) -> Any:
    if isinstance(value, setting.type) and not (setting.type is int and isinstance(value, bool)):
        result = value
    elif setting.type is bool:
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            result = True
        elif text in ("0", "false", "no", "off", ""):
            result = False
        else:
            raise ValueError(f"setting {setting.name}: expected a boolean, got {value!r}")
    else:
        try:
            result = setting.type(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"setting {setting.name}: expected {setting.type.__name__}, got {value!r}") from exc
    if setting.choices and result not in setting.choices:
        raise ValueError(f"setting {setting.name}: must be one of {', '.join(setting.choices)}, got {result!r}")
    return result


@dataclasses.dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        return load_settings({**self.values, **changes}, environ={})


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then ``HITMETRIX_*`` environment variables, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in _BY_NAME:
            raise ValueError(f"unknown setting in environment: {key}")
        values[name] = _coerce(_BY_NAME[name], raw)
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise ValueError(f"unknown setting: {name}")
        if value is not None:
            values[name] = _coerce(_BY_NAME[name], value)
    return Settings(values)


def settings_markdown() -> str:
    """The settings reference, generated for docs/settings.md."""
    lines = ["# Settings", "", "Every setting is a CLI flag of `hitmetrix serve` and an environment variable.", ""]
    lines += ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        flag = "--" + s.name.replace("_", "-")
        lines.append(f"| `{flag}` | `{ENV_PREFIX}{s.name.upper()}` | `{s.default}` | {s.help} |")
    return "\n".join(lines) + "\n"
