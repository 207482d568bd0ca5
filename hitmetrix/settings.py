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
    Setting(
        "crawler_dns_file",
        str,
        "",
        "Hosts-style file answering the reverse and forward DNS of crawler checks; empty: the system resolver.",
    ),
    Setting("crawler_dns_timeout_s", float, 1.0, "Longest wait for a crawler's reverse-DNS check before 'unverified'."),
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
    Setting("detect", bool, True, "Run the detection engine on every captured event (alerts, risk, decisions)."),
    Setting(
        "detect_rebuild_window_s",
        float,
        3600.0,
        "Seconds of spooled events kept after loading so detection can rebuild its state after a restart.",
    ),
    Setting(
        "detect_alert_cooldown_s", float, 900.0, "Findings of one rule for one entity within this merge into one alert."
    ),
    Setting("detect_auto_block", bool, False, "High and critical alerts make a block decision for their entity."),
    Setting("detect_block_ttl_s", float, 3600.0, "How long a block decision made by a rule lasts."),
    Setting(
        "detect_max_entities",
        int,
        50_000,
        "Most entities each of a detector's windowed counters holds (the least recently seen are dropped first); "
        "about 400 bytes each.",
    ),
    # Detector thresholds (hitmetrix/detect/detectors/): each default names the field rule it follows.
    # automation — OWASP OAT-011/OAT-019 bots; CrowdSec http-bad-user-agent, http-crawl-non_statics.
    Setting("detect_automation_window_s", float, 600.0, "Window for the no-JavaScript, tool and cadence checks."),
    Setting(
        "detect_automation_nojs_pages",
        int,
        20,  # CrowdSec http-crawl-non_statics counts non-static pages per client; a browser sends tracker events first
        "Page requests from one session with no tracker event from its session or address in the window.",
    ),
    Setting(
        "detect_automation_min_paths",
        int,
        3,  # an uptime monitor polls one URL; a crawler walks many
        "Distinct paths a client must fetch before the no-JavaScript, tool or cadence checks judge it.",
    ),
    Setting("detect_automation_fast_pages", int, 40, "Page requests within the fast window that no person makes."),
    # CrowdSec http-crawl-non_statics: capacity 40, leak 0.5 s, i.e. 40 pages at 2 per second.
    Setting("detect_automation_fast_window_s", float, 20.0, "The fast window for detect_automation_fast_pages."),
    Setting(
        "detect_automation_regular_intervals",
        int,
        20,
        "Page intervals looked at for machine-regular cadence (an interval spread below the variation below).",
    ),
    Setting(
        "detect_automation_regular_max_cv",
        float,
        0.1,  # human think-times vary by far more than 10 % of their mean (log-normal dwell times)
        "Largest coefficient of variation (stdev / mean) of page intervals that counts as machine-regular.",
    ),
    Setting("detect_automation_key_min_count", int, 10, "Keys a page must see before typing cadence is judged."),
    Setting(
        "detect_automation_key_median_ms",
        float,
        30.0,  # fast human typists average 80-120 ms between keys; below 30 ms is pasted or scripted input
        "Median interval between keys below which typing is inhuman.",
    ),
    Setting(
        "detect_automation_key_mad_ms",
        float,
        3.0,  # scripted typing with a fixed delay has near-zero spread; people vary by tens of ms
        "Median absolute deviation of key intervals below which typing is inhuman.",
    ),
    Setting(
        "detect_automation_clicks_without_move",
        int,
        3,
        "Clicks on one page with no pointer movement at all (and no touch) that mark a scripted client.",
    ),
    # brute_force — OWASP OAT-007 credential cracking; CrowdSec ssh-slow-bf: capacity 10, leak 60 s.
    Setting("detect_brute_force_failures", int, 10, "Failed sign-ins for one username in the window."),
    Setting("detect_brute_force_window_s", float, 600.0, "Window for detect_brute_force_failures."),
    # credential_stuffing — OWASP OAT-008; CrowdSec ssh-bf_user-enum counts distinct usernames per source.
    Setting("detect_credential_stuffing_usernames", int, 10, "Distinct usernames failing from one address."),
    Setting("detect_credential_stuffing_net_usernames", int, 20, "Distinct usernames failing from one /24 or /64."),
    Setting("detect_credential_stuffing_window_s", float, 600.0, "Window for the credential stuffing counts."),
    Setting(
        "detect_credential_stuffing_failure_ratio",
        float,
        0.8,  # stuffing lists hit 0.1-2 % (OAT-008); a shared address of real people mostly succeeds
        "Share of sign-ins from the source that must fail (many people behind one address mostly succeed).",
    ),
    Setting(
        "detect_credential_stuffing_asn_sources",
        int,
        20,
        "Distinct addresses of one network operator (AS) failing sign-ins in the window (distributed stuffing).",
    ),
    Setting("detect_credential_stuffing_asn_usernames", int, 20, "Distinct usernames those addresses fail on."),
    Setting(
        "detect_credential_stuffing_asn_per_source",
        float,
        3.0,
        "Most failures per address on average for distributed stuffing (each source tries a few).",
    ),
    # password_spraying — OWASP OAT-007 (MITRE ATT&CK T1110.003): few passwords over many accounts, slowly.
    Setting("detect_password_spraying_usernames", int, 20, "Distinct usernames failing from one source."),
    Setting("detect_password_spraying_window_s", float, 3600.0, "The long window for password spraying."),
    Setting(
        "detect_password_spraying_attempts_per_username",
        float,
        1.5,
        "Most failures per username on average (spraying tries each account about once).",
    ),
    # account_takeover — OWASP OAT-007/OAT-008 aftermath; fail2ban maxretry 5.
    Setting("detect_account_takeover_failures", int, 5, "Failed sign-ins before a successful one that is suspect."),
    Setting("detect_account_takeover_window_s", float, 900.0, "Window for detect_account_takeover_failures."),
    Setting(
        "detect_account_takeover_min_history",
        int,
        1,
        "Successful sign-ins an account needs before a new device and new country or network is judged.",
    ),
    Setting(
        "detect_account_takeover_max_speed_kmh",
        float,
        1000.0,  # an airliner cruises at 800-950 km/h; the usual impossible-travel cut-off
        "Travel speed between two countries of one account above which the travel is impossible.",
    ),
    Setting(
        "detect_account_takeover_travel_slack_km",
        float,
        500.0,
        "Distance subtracted before the speed is computed: countries are single centroid points.",
    ),
    # session_hijack — OWASP session hijacking; the tracker's session cookie lives 30 min, sliding.
    Setting(
        "detect_session_hijack_life_s",
        float,
        1800.0,
        "Idle time after which a session id's devices and networks are forgotten.",
    ),
    # scraping — OWASP OAT-011 scraping; CrowdSec http-crawl-non_statics. A person spends 5 s or more on a
    # profile: 30 distinct ones a minute is one every 2 s, sustained.
    Setting("detect_scraping_profiles", int, 30, "Distinct profile-like pages one session reads in the window."),
    Setting(
        "detect_scraping_ip_profiles",
        int,
        100,
        "Distinct profile-like pages one address reads in the window (higher: many people share addresses).",
    ),
    Setting("detect_scraping_window_s", float, 60.0, "Window for the profile counts."),
    Setting(
        "detect_scraping_sequential_ids",
        int,
        10,
        "Profile ids next to an id the same client read shortly before (id enumeration), in the long window.",
    ),
    Setting("detect_scraping_exports", int, 5, "Export requests from one client in the long window."),
    Setting("detect_scraping_export_accounts", int, 3, "Distinct accounts exported by one client in the long window."),
    Setting("detect_scraping_nojs_profiles", int, 10, "Profile-like pages read by a client running no JavaScript."),
    Setting("detect_scraping_long_window_s", float, 3600.0, "Window for ids, exports and no-JavaScript readers."),
    # probing — OWASP OAT-014 vulnerability scanning; CrowdSec http-probing, http-sensitive-files,
    # http-sqli-probing / http-xss-probing / http-path-traversal-probing, http-bad-user-agent.
    Setting(
        "detect_probing_error_paths",
        int,
        10,  # CrowdSec http-probing: distinct paths answered 400/403/404, capacity 10, leak 10 s
        "Distinct non-static paths answered 400, 403 or 404 for one address in the error window.",
    ),
    Setting("detect_probing_error_window_s", float, 60.0, "Window for detect_probing_error_paths."),
    Setting(
        "detect_probing_sensitive_paths",
        int,
        3,  # CrowdSec http-sensitive-files overflows at 5; a person never asks for one
        "Distinct sensitive paths (/.env, /.git/config, backups, admin panels) one address requests in the window.",
    ),
    Setting(
        "detect_probing_injections",
        int,
        3,  # CrowdSec http-path-traversal-probing: capacity 5; sqli/xss: 10 at 1 s leak
        "Requests carrying SQL, XSS, path traversal or template injection patterns from one address.",
    ),
    Setting(
        "detect_probing_scanner_requests",
        int,
        2,  # CrowdSec http-bad-user-agent: capacity 1
        "Requests from a scanner's user agent (sqlmap, nikto, nuclei …) before it is reported.",
    ),
    Setting("detect_probing_window_s", float, 300.0, "Window for sensitive paths, injections and scanner requests."),
    # signup_ring — OWASP OAT-019 account creation; rates in the spirit of CrowdSec's per-source buckets, per hour
    # because sign-ups are rare: a household or office signs up a handful of accounts, not ten.
    Setting(
        "detect_signup_ring_device_signups",
        int,
        5,  # the tracker's fingerprint is coarse (identical phones share it): a few real sign-ups may share one
        "Sign-ups sharing one device fingerprint and user agent in the window.",
    ),
    Setting("detect_signup_ring_ip_signups", int, 10, "Sign-ups from one address in the window."),
    Setting("detect_signup_ring_net_signups", int, 20, "Sign-ups from one /24 or /64 in the window."),
    Setting(
        "detect_signup_ring_sequence_signups",
        int,
        5,
        "Sign-ups from distinct sessions with the same ordered events and coarse timings before them.",
    ),
    Setting(
        "detect_signup_ring_sequence_min_events",
        int,
        5,
        "Events a session needs before its sign-up for its behaviour sequence to be compared.",
    ),
    Setting("detect_signup_ring_window_s", float, 3600.0, "Window for the sign-up counts."),
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
