"""Recording chunks on their way to the blob store: inflate and check exactly as capture did, recompress with zstd.

Clients send gzip (all a browser can make); blobs are zstd level 3, smaller and
faster to replay. Whether a chunk is storable is decided by capture's own
checks (``hitmetrix.capture.chunkcheck``: capped inflation with a zip-bomb
ratio, nesting depth counted without recursion, UTF-8, an array of objects),
so that nothing capture acknowledged is refused here under the same settings.
Chunks from older spools or other writers get the same checks; what fails them
raises ``ChunkCheckError`` and goes to quarantine.

``recode_deduplicated`` also takes the large texts out of a chunk (stylesheets in
every full snapshot, constructed sheets' text, big attribute values such as a
canvas's pixels) and puts a reference in their place, for the worker to keep each
text once per project (``hitmetrix.store.blobs``): a visitor's every page view
carries the site's stylesheets again, and they are most of a snapshot's bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zstandard

# Shared with capture on purpose: one definition of a storable chunk (see the module docstring).
from hitmetrix.capture.chunkcheck import ChunkCheckError, chunk_json
from hitmetrix.capture.jsondepth import json_depth
from hitmetrix.store.blobs import is_text_ref, text_ref

MAX_CHUNK_JSON_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 512
ZSTD_LEVEL = 3
# Stylesheet texts this long or longer are kept once per project; shorter ones cost less inline than a reference
# and a request. Any other attribute value must be longer still (a data: URL, a canvas's pixels).
MIN_STYLESHEET_CHARS = 1024
MIN_ATTRIBUTE_CHARS = 8192
# Where rrweb puts a stylesheet's text: a <style>/<link>'s serialised sheet, a constructed sheet's
# replace/replaceSync text, one rule of an adopted or script-edited sheet; and a canvas's pixels, which
# every snapshot of the page repeats.
STYLESHEET_KEYS = frozenset({"_cssText", "replace", "replaceSync", "rule", "rr_dataURL"})

__all__ = [
    "MAX_CHUNK_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "ChunkCheckError",
    "ChunkRecoder",
    "Recoded",
    "extract_texts",
    "warm_up",
]


@dataclass
class Recoded:
    blob: bytes  # zstd of the chunk's JSON, large texts as references
    raw_bytes: int  # the JSON the client sent
    texts: dict[str, bytes] = field(default_factory=dict)  # sha256 → text the blob refers to


def warm_up() -> None:
    """Load Arrow's compute functions (the depth count's) now, not while a chunk waits."""
    json_depth(b"[" * 5000 + b"]" * 5000)


class ChunkRecoder:
    """gzip in, zstd out; one per thread (a zstd compressor is not thread-safe)."""

    def __init__(
        self, max_json_bytes: int = MAX_CHUNK_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH, level: int = ZSTD_LEVEL
    ) -> None:
        self.max_json_bytes = max_json_bytes
        self.max_depth = max_depth
        self._compressor = zstandard.ZstdCompressor(level=level)

    def recode(self, gzip_data: bytes) -> tuple[bytes, int]:
        """The zstd blob and the size of the JSON it holds; ChunkCheckError if the chunk cannot be stored."""
        raw = chunk_json(gzip_data, self.max_json_bytes, self.max_depth)
        return self._compressor.compress(raw), len(raw)

    def recode_deduplicated(self, gzip_data: bytes) -> Recoded:
        """Like ``recode``, the large texts taken out (``extract_texts``): the worker keeps them first."""
        raw = chunk_json(gzip_data, self.max_json_bytes, self.max_depth)
        slim, texts = extract_texts(raw)
        return Recoded(self._compressor.compress(slim), len(raw), texts)


def extract_texts(raw: bytes) -> tuple[bytes, dict[str, bytes]]:
    """``raw`` (a checked chunk's JSON) with its large texts replaced by references, and those texts by sha256.

    A chunk whose JSON msgspec will not take (a lone surrogate escape, say) is kept as it came.
    """
    if len(raw) < MIN_STYLESHEET_CHARS:
        return raw, {}
    try:
        events = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw, {}
    texts: dict[str, bytes] = {}
    # (container, key, is the container an element's attributes); iterative: chunks nest as deep as pages do.
    stack: list[tuple[Any, Any, bool]] = [(events, i, False) for i in range(len(events))]
    while stack:
        container, key, in_attributes = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            text_node_of_style = value.get("isStyle") is True
            for k, v in value.items():
                if isinstance(v, str):
                    if len(v) >= MIN_STYLESHEET_CHARS and (
                        k in STYLESHEET_KEYS
                        or (text_node_of_style and k == "textContent")
                        or (in_attributes and len(v) >= MIN_ATTRIBUTE_CHARS)
                    ):
                        value[k] = _reference(v, texts)
                elif isinstance(v, (dict, list)):
                    stack.append((value, k, k == "attributes" and isinstance(v, dict)))
        elif isinstance(value, list):
            stack.extend((value, i, False) for i in range(len(value)))
    if not texts:
        return raw, {}
    return msgspec.json.encode(events), texts


def _reference(text: str, texts: dict[str, bytes]) -> str:
    if is_text_ref(text):  # already one (sent as such): left alone, it resolves only within its project
        return text
    body = text.encode()
    sha256 = hashlib.sha256(body).hexdigest()
    texts[sha256] = body
    return text_ref(sha256)
