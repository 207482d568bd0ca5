"""The SDK client a test host makes, from HM_* environment variables the integration tests set."""

from __future__ import annotations

import os

from hitmetrix.sdk import Client


def client_from_env() -> Client:
    env = os.environ
    return Client(
        endpoint=env["HM_ENDPOINT"],
        server_key=env["HM_SERVER_KEY"],
        trusted_proxies=env.get("HM_TRUSTED_PROXIES", "127.0.0.1"),
        enforce=env.get("HM_ENFORCE") == "1",
        poll_s=float(env.get("HM_POLL_S", "2")),
        max_queue=int(env.get("HM_MAX_QUEUE", "10000")),
        batch_size=int(env.get("HM_BATCH_SIZE", "500")),
        flush_interval_s=float(env.get("HM_FLUSH_INTERVAL_S", "0.2")),
        timeout_s=float(env.get("HM_TIMEOUT_S", "2")),
        max_attempts=int(env.get("HM_MAX_ATTEMPTS", "8")),
        backoff_base_s=float(env.get("HM_BACKOFF_BASE_S", "0.5")),
        backoff_max_s=float(env.get("HM_BACKOFF_MAX_S", "30")),
    )
