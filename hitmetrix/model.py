"""The enriched batch: what capture appends to the spool and the loader reads.

Shared by capture (producer) and loader (consumer); encoded as MessagePack.
"""

from __future__ import annotations

import msgspec


class StoredEvent(msgspec.Struct, kw_only=True, omit_defaults=True, array_like=True):
    event_id: str
    type: str
    ts: int  # ms since epoch, skew-corrected with sent_at/received_at
    client_ts: int  # ms since epoch as the client sent it
    url: str = ""
    title: str = ""
    referrer: str = ""
    name: str = ""
    selector: str = ""
    tag: str = ""
    text: str = ""
    x: int = 0
    y: int = 0
    vw: int = 0
    vh: int = 0
    props: str = ""  # JSON text


class StoredChunk(msgspec.Struct, kw_only=True, array_like=True):
    seq: int
    first_ts: int
    last_ts: int
    count: int
    data: bytes  # gzip of the JSON array of rrweb events, as the client sent it


class StoredBatch(msgspec.Struct, kw_only=True, array_like=True):
    batch_id: str
    project_id: int
    received_at: int  # ms since epoch, server clock
    session_id: str
    anonymous_id: str
    user_id: str = ""
    ip: str = ""  # already anonymised per the project setting
    country: str = ""
    asn: int = 0
    as_org: str = ""
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""
    user_agent: str = ""
    events: list[StoredEvent] = []
    recording: list[StoredChunk] = []
    # Appended for detection; array_like encoding keeps older spool segments decodable because
    # missing trailing fields take their defaults.
    source: str = ""  # "" browser tracker, "middleware", "log"
    ip_key: str = ""  # keyed hash of the FULL client address (hitmetrix.detect.keys.ip_key)
    ip_net: str = ""  # the full address's /24 (IPv4) or /64 (IPv6) as CIDR text
    crawler: str = ""  # claimed crawler + ":verified" / ":unverified"; "" when none is claimed


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredBatch)


def encode_batch(batch: StoredBatch) -> bytes:
    return _encoder.encode(batch)


def decode_batch(payload: bytes) -> StoredBatch:
    return _decoder.decode(payload)
