"""The loader's chunk recoder: zstd of what capture would accept, and a clear refusal (never a crash) for the rest."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import pytest
import zstandard

from hitmetrix.loader.chunks import ChunkCheckError, ChunkRecoder, extract_texts
from hitmetrix.store.blobs import text_ref
from tests.loader.helpers import rrweb_like

MIB = 1024 * 1024


def test_a_storable_chunk_becomes_zstd_of_its_json() -> None:
    raw = rrweb_like(random.Random(3), 200_000)
    blob, raw_bytes = ChunkRecoder(max_json_bytes=MIB, max_depth=8).recode(gzip.compress(raw))
    assert (zstandard.ZstdDecompressor().decompress(blob), raw_bytes) == (raw, len(raw))
    two_members = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])
    assert ChunkRecoder(MIB, 8).recode(two_members)[1] == len(raw)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # The 271-byte request of the incident: a RecursionError once, a refusal with a reason now.
        (gzip.compress(b"[" * 100_000 + b"]" * 100_000), "JSON nested deeper than 512 levels"),
        (gzip.compress(b"[{}," * 100 + b"[" * 600 + b"]" * 600 + b"]"), "JSON nested deeper than 512 levels"),
        (gzip.compress(rrweb_like(random.Random(4), 2 * MIB)), f"more than {MIB} bytes once decompressed"),
        (b"\x1f\x8b\x08\x00 not deflate", "corrupt gzip"),
        (gzip.compress(b'[{"a": 1}]')[:-6], "truncated"),
        (gzip.compress(b'{"not": "an array"}'), "not a JSON array of objects"),
        (gzip.compress(b"[1, 2, 3]"), "not a JSON array of objects"),
        (gzip.compress(b'[{"text": "\xff"}]'), "not valid UTF-8"),
    ],
)
def test_a_chunk_that_cannot_be_stored_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ChunkCheckError, match=reason):
        ChunkRecoder(max_json_bytes=MIB, max_depth=512).recode(data)


def test_a_zip_bomb_is_refused_long_before_its_cap() -> None:
    with pytest.raises(ChunkCheckError, match="zip bomb"):
        ChunkRecoder(max_json_bytes=32 * MIB, max_depth=512).recode(gzip.compress(b"0" * (64 * MIB)))


def test_large_stylesheet_texts_and_pixels_leave_the_chunk_and_small_ones_stay() -> None:
    css, small, pixels = ".a { color: red } " * 100, ".b { margin: 0 }", "data:image/png;base64," + "A" * 5000
    paragraph = "words " * 2000  # a long text node, not a stylesheet: it stays
    events = [
        {"type": 2, "timestamp": 1, "data": {"node": {"type": 0, "childNodes": [
            {"type": 2, "tagName": "style", "attributes": {"_cssText": css}, "childNodes": []},
            {"type": 2, "tagName": "style", "attributes": {"_cssText": small}, "childNodes": []},
            {"type": 2, "tagName": "canvas", "attributes": {"rr_dataURL": pixels}, "childNodes": []},
            {"type": 3, "textContent": paragraph},
        ]}}},
        {"type": 3, "timestamp": 2, "data": {"source": 8, "id": 3, "replaceSync": css}},
    ]
    raw = json.dumps(events).encode()
    slim, texts = extract_texts(raw)
    assert sorted(texts.values()) == sorted([css.encode(), pixels.encode()]), "each once, though css is there twice"
    kept = json.loads(slim)
    nodes = kept[0]["data"]["node"]["childNodes"]
    assert nodes[0]["attributes"]["_cssText"] == kept[1]["data"]["replaceSync"] == text_ref(hashlib.sha256(
        css.encode()).hexdigest())
    assert nodes[1]["attributes"]["_cssText"] == small and nodes[3]["textContent"] == paragraph
    recoded = ChunkRecoder(MIB, 64).recode_deduplicated(gzip.compress(raw))
    assert recoded.raw_bytes == len(raw) and recoded.texts == texts
    assert zstandard.ZstdDecompressor().decompress(recoded.blob) == slim


def test_a_chunk_msgspec_cannot_take_or_without_large_texts_is_kept_as_it_came() -> None:
    lone_surrogate = b'[{"type": 3, "text": "\\ud800' + b"x" * 2000 + b'"}]'
    assert extract_texts(lone_surrogate) == (lone_surrogate, {})
    plain = rrweb_like(random.Random(8), 20_000)
    assert extract_texts(plain) == (plain, {})
