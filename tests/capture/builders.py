"""Builders shared by the capture tests: wire bodies, projects, enrichment contexts."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from hitmetrix.capture.enrich import EnrichEnv, Enrichment, RequestFacts
from hitmetrix.capture.schema import IncomingBatch, decode_batch_body
from hitmetrix.store.meta import Project

NOW_MS = 1_764_255_600_000
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def project(
    project_id: int = 1,
    *,
    key: str = "hm_pk_test",
    mode: str = "none",
    origins: str = "",
    hash_key: str = "k1",
    query_keys: str = "",
) -> Project:
    return Project(
        id=project_id,
        name=f"p{project_id}",
        public_key=key,
        ip_anonymisation=mode,
        ip_hash_key=hash_key,
        allowed_origins=origins,
        allowed_query_keys=query_keys,
    )


def chunk_data(rrweb_events: list[dict[str, Any]] | None = None) -> str:
    events = rrweb_events or [{"type": 4, "timestamp": NOW_MS, "data": {}}]
    return base64.b64encode(gzip.compress(json.dumps(events).encode())).decode()


def batch_dict(events: int = 3, chunks: int = 0, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "session_id": "sess_0001",
        "anonymous_id": "anon_0001",
        "sent_at": NOW_MS,
        "events": [
            {"type": "pageview", "ts": NOW_MS - 100 + i, "url": f"https://shop.example/p/{i}", "props": {"nav": "load"}}
            for i in range(events)
        ],
        "recording": [
            {"seq": i, "first_ts": NOW_MS - 50, "last_ts": NOW_MS - 10, "count": 1, "data": chunk_data()}
            for i in range(chunks)
        ],
    }
    body.update(extra)
    return body


def body_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def incoming(**kwargs: Any) -> IncomingBatch:
    return decode_batch_body(body_bytes(batch_dict(**kwargs)))


def enrichment(
    batch: IncomingBatch | None = None,
    *,
    peer: str = "8.8.8.8",
    forwarded_for: str = "",
    user_agent: str = CHROME_UA,
    proj: Project | None = None,
    now_s: float = NOW_MS / 1000,
    env: EnrichEnv | None = None,
    received_at_ms: int | None = None,
) -> Enrichment:
    return Enrichment(
        facts=RequestFacts(
            peer=peer, forwarded_for=forwarded_for, user_agent=user_agent, received_at_ms=received_at_ms
        ),
        project=proj or project(),
        incoming=batch if batch is not None else incoming(),
        env=env or EnrichEnv(clock=lambda: now_s),
    )
