"""Recording chunks under the data directory (S3 later, same interface): per-chunk files, per-session units, and
the large texts (stylesheets) every project keeps once.

Layout under the root, per project ``P`` and session ``S``:

- ``P/S[:2]/S/00000007.json.zst``: one chunk as the chunk worker wrote it, durable before it is acknowledged.
  Older data directories may hold gzip here instead of zstd: both are read (by their magic bytes).
- ``P/S[:2]/S/unit-<first>-<last>-<n>.zst``: a session's chunks compacted into one zstd frame once the session
  has gone quiet (``compact_session``), several times smaller than the chunks apart since one chunk's
  snapshot repeats much of the one before. It starts with a header line (the seqs and their JSON lengths); the
  loose chunk files are deleted only after the unit is durable, so a crash leaves one or the other or both.
- ``P/texts/ab/<sha256>.zst``: a stylesheet (or other large repeated text) that chunks of ``P`` refer to by
  content hash instead of carrying it in every full snapshot (``TEXT_REF_PREFIX``); per project, so a reference
  can only ever resolve to text of its own project.

``get`` gives any reader a chunk as a zstd frame of its JSON with the texts put back: what a generic rrweb
player understands. ``stored_json`` gives it with the references, for the replay page that resolves them itself.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import zstandard

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_SUFFIX = ".json.zst"
UNIT_PREFIX = "unit-"
TEXTS_DIR = "texts"
# A reference in place of a string value: the prefix and the text's sha256 (hex), the whole string.
TEXT_REF_PREFIX = "hm:text:sha256:"
_TEXT_REF_BYTES = TEXT_REF_PREFIX.encode()
TEXT_REF_LENGTH = len(TEXT_REF_PREFIX) + 64
UNIT_ZSTD_LEVEL = 12
DICTS_DIR = "dicts"
# A project's units are compressed with a zstd dictionary trained on its own chunks, once it has this much of
# them (a 16 KiB dictionary made a single-page visit's unit a third smaller in bench/recording_bytes.py).
DICT_BYTES = 16 * 1024
DICT_TRAINING_BYTES = 256 * 1024
DICT_TRAINING_CHUNKS = 40
DICT_TRAINING_PROJECTS = 16
TEXT_ZSTD_LEVEL = 12
# Readers inflate at most this much of one stored chunk or unit (the store is ours, but a unit has many chunks).
MAX_INFLATED_BYTES = 512 * 1024 * 1024


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # zstd (de)compressors are not thread-safe
        self._dicts: dict[tuple[int, int], zstandard.ZstdCompressionDict] = {}  # (project, dict id) → dictionary
        self._samples: dict[int, list[bytes]] = {}  # chunks of projects with no dictionary yet, to train one
        self._dicts_lock = threading.Lock()

    # --- keys ----------------------------------------------------------------------------------------

    @staticmethod
    def chunk_key(project_id: int, session_id: str, seq: int) -> str:
        if not _SAFE.match(session_id):
            raise ValueError(f"unsafe session id {session_id!r}")
        return f"{project_id}/{session_id[:2]}/{session_id}/{seq:08d}{CHUNK_SUFFIX}"

    @staticmethod
    def session_dir_key(project_id: int, session_id: str) -> str:
        if not _SAFE.match(session_id):
            raise ValueError(f"unsafe session id {session_id!r}")
        return f"{project_id}/{session_id[:2]}/{session_id}"

    # --- writing -------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a reader sees the old file or the whole new one."""
        self._write(self.root / key, data)

    def sync_dirs(self, keys: list[str]) -> None:
        """fsync the directories of freshly written keys so renames survive a crash."""
        for directory in {(self.root / key).parent for key in keys}:
            _fsync_dir(directory)

    def put_text(self, project_id: int, text: bytes) -> str:
        """Keep ``text`` once for the project (durably, directory included); returns its sha256."""
        sha256 = hashlib.sha256(text).hexdigest()
        path = self._text_path(project_id, sha256)
        if not path.exists():
            self._write(path, self._compressor(TEXT_ZSTD_LEVEL).compress(text))
            _fsync_dir(path.parent)
        return sha256

    def get_text(self, project_id: int, sha256: str) -> bytes | None:
        """A text the project keeps; None for any other (another project's hash included)."""
        if not _SHA256.match(sha256):
            return None
        try:
            blob = self._text_path(project_id, sha256).read_bytes()
        except FileNotFoundError:
            return None
        return self._decompress(blob)

    def _text_path(self, project_id: int, sha256: str) -> Path:
        return self.root / str(int(project_id)) / TEXTS_DIR / sha256[:2] / f"{sha256}.zst"

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # --- reading -------------------------------------------------------------------------------------

    def stored_json(self, key: str) -> bytes:
        """A chunk's JSON as stored: large texts as references (``TEXT_REF_PREFIX``). OSError if it is gone."""
        path = self.root / key
        try:
            return self._decompress(path.read_bytes())
        except FileNotFoundError:
            found = self._from_unit(path)
            if found is None:
                raise
            return found

    def chunk_json(self, key: str) -> bytes:
        """A chunk's JSON with its texts put back, as a generic rrweb player wants it."""
        return self.inline_texts(_project_of(key), self.stored_json(key))

    def get(self, key: str) -> bytes:
        """A chunk as a zstd frame of its JSON, texts put back (what every reader of a chunk file expected)."""
        path = self.root / key
        with contextlib.suppress(FileNotFoundError):  # it went into a unit
            blob = path.read_bytes()
            if blob[:4] == ZSTD_MAGIC and _TEXT_REF_BYTES not in self._decompress(blob):
                return blob
        return self._compressor(1).compress(self.chunk_json(key))

    def inline_texts(self, project_id: int, raw: bytes) -> bytes:
        """``raw`` (a chunk's JSON) with each text reference replaced by the project's text."""
        if _TEXT_REF_BYTES not in raw:
            return raw
        events = msgspec.json.decode(raw)
        texts: dict[str, str] = {}

        def resolve(value: str) -> str:
            sha256 = value[len(TEXT_REF_PREFIX) :]
            if sha256 not in texts:
                # None: a reference the chunk came with, not one we made (or a text lost with its disk): an
                # empty string, so that one forged value cannot make a whole recording unreadable.
                text = self.get_text(project_id, sha256)
                texts[sha256] = text.decode() if text is not None else ""
            return texts[sha256]

        return msgspec.json.encode(map_strings(events, lambda s: resolve(s) if is_text_ref(s) else s))

    def _decompress(self, blob: bytes, project_id: int | None = None) -> bytes:
        if blob[:2] == GZIP_MAGIC:
            return gzip.decompress(blob)
        dict_id = zstandard.get_frame_parameters(blob).dict_id if project_id is not None else 0
        decompressor = self._decompressor()
        if dict_id:
            decompressor = zstandard.ZstdDecompressor(dict_data=self._dictionary(project_id or 0, dict_id))
        with decompressor.stream_reader(blob) as reader:
            data = reader.read(MAX_INFLATED_BYTES + 1)
        if len(data) > MAX_INFLATED_BYTES:
            raise ValueError(f"stored blob inflates past {MAX_INFLATED_BYTES} bytes")
        return data

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        compressors: dict[int, zstandard.ZstdCompressor] = self._local.__dict__.setdefault("compressors", {})
        if level not in compressors:
            compressors[level] = zstandard.ZstdCompressor(level=level)
        return compressors[level]

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        if not hasattr(self._local, "decompressor"):
            self._local.decompressor = zstandard.ZstdDecompressor()
        return self._local.decompressor  # type: ignore[no-any-return]

    # --- units ---------------------------------------------------------------------------------------

    def _units(self, directory: Path) -> list[Path]:
        """The session's units, newest first (a later unit holds a later copy of any chunk in both)."""
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except FileNotFoundError:
            return []
        units = [n for n in names if n.startswith(UNIT_PREFIX) and n.endswith(".zst") and ".tmp" not in n]
        return [directory / n for n in sorted(units, key=_unit_order, reverse=True)]

    def _from_unit(self, chunk_path: Path) -> bytes | None:
        seq = _seq_of(chunk_path.name)
        if seq is None:
            return None
        for _ in range(3):  # a unit may be replaced by a newer one while we look: look again
            try:
                for unit in self._units(chunk_path.parent):
                    parts = self._read_unit(unit)
                    if seq in parts:
                        return parts[seq]
                return None
            except FileNotFoundError:
                continue
        return None

    def _read_unit(self, path: Path) -> dict[int, bytes]:
        """A unit's chunks by seq; the last unit read is kept per thread (a replay reads its chunks in turn)."""
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            cached = getattr(self._local, "unit", None)
            if cached is not None and cached[0] == (path, stat.st_ino, stat.st_mtime_ns):
                return cached[1]  # type: ignore[no-any-return]
            blob = fh.read()
        parts = self._parse_unit(self._decompress(blob, int(path.relative_to(self.root).parts[0])))
        self._local.unit = ((path, stat.st_ino, stat.st_mtime_ns), parts)
        return parts

    @staticmethod
    def _parse_unit(data: bytes) -> dict[int, bytes]:
        header_end = data.index(b"\n")
        header = json.loads(data[:header_end])
        parts: dict[int, bytes] = {}
        offset = header_end + 1
        for seq, length in header["chunks"]:
            parts[int(seq)] = data[offset : offset + length]
            offset += length
        return parts

    def compact_session(self, project_id: int, session_id: str) -> int:
        """Put the session's loose chunk files (and older units) into one unit; returns how many loose chunks
        it took. The new unit is durable before anything it replaces is deleted."""
        directory = self.root / self.session_dir_key(project_id, session_id)
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except FileNotFoundError:
            return 0
        loose = sorted(n for n in names if n.endswith(CHUNK_SUFFIX) and _seq_of(n) is not None)
        units = self._units(directory)
        if not loose and len(units) <= 1:
            return 0
        parts: dict[int, bytes] = {}
        for unit in reversed(units):  # oldest first: newer copies win
            parts.update(self._read_unit(unit))
        for name in loose:
            seq = _seq_of(name)
            assert seq is not None
            parts[seq] = self._decompress((directory / name).read_bytes())
        seqs = sorted(parts)
        header = json.dumps({"chunks": [[seq, len(parts[seq])] for seq in seqs]}, separators=(",", ":")).encode()
        body = header + b"\n" + b"".join(parts[seq] for seq in seqs)
        generation = max((_unit_order(u.name)[0] for u in units), default=0) + 1
        unit_path = directory / f"{UNIT_PREFIX}{generation:06d}-{seqs[0]:08d}-{seqs[-1]:08d}.zst"
        self._write(unit_path, self._unit_compressor(project_id, [parts[seq] for seq in seqs]).compress(body))
        _fsync_dir(directory)
        for name in loose:
            (directory / name).unlink(missing_ok=True)
        for unit in units:
            unit.unlink(missing_ok=True)
        _fsync_dir(directory)
        return len(loose)

    # --- per-project dictionaries ---------------------------------------------------------------------

    def _dict_path(self, project_id: int, dict_id: int) -> Path:
        return self.root / str(int(project_id)) / DICTS_DIR / f"{dict_id}.zdict"

    def _dictionary(self, project_id: int, dict_id: int) -> zstandard.ZstdCompressionDict:
        with self._dicts_lock:
            found = self._dicts.get((project_id, dict_id))
        if found is None:
            found = zstandard.ZstdCompressionDict(self._dict_path(project_id, dict_id).read_bytes())
            with self._dicts_lock:
                self._dicts[(project_id, dict_id)] = found
        return found

    def _project_dictionary(self, project_id: int) -> zstandard.ZstdCompressionDict | None:
        """The project's dictionary (the newest on disk), if it has one."""
        directory = self.root / str(int(project_id)) / DICTS_DIR
        try:
            names = [n for n in os.listdir(directory) if n.endswith(".zdict") and n[: -len(".zdict")].isdigit()]
        except FileNotFoundError:
            return None
        if not names:
            return None
        newest = max(names, key=lambda n: (directory / n).stat().st_mtime_ns)
        return self._dictionary(project_id, int(newest[: -len(".zdict")]))

    def _unit_compressor(self, project_id: int, chunks: list[bytes]) -> zstandard.ZstdCompressor:
        """With the project's dictionary; training one (durably, before any unit uses it) once the project's
        units so far hold enough chunks. Until then, and if training fails, without."""
        found = self._project_dictionary(project_id)
        if found is None:
            with self._dicts_lock:
                # Memory stays bounded: samples of a few projects at a time, each up to its training size.
                if project_id not in self._samples and len(self._samples) >= DICT_TRAINING_PROJECTS:
                    return self._compressor(UNIT_ZSTD_LEVEL)
                samples = self._samples.setdefault(project_id, [])
                samples.extend(chunks)
                enough = len(samples) >= DICT_TRAINING_CHUNKS and sum(map(len, samples)) >= DICT_TRAINING_BYTES
                if enough:
                    del self._samples[project_id]
            if enough:
                training: list[bytes | bytearray | memoryview] = list(samples)
                try:
                    found = zstandard.train_dictionary(DICT_BYTES, training)
                except zstandard.ZstdError:
                    found = None
                if found is not None:
                    path = self._dict_path(project_id, found.dict_id())
                    self._write(path, found.as_bytes())
                    _fsync_dir(path.parent)
        if found is None:
            return self._compressor(UNIT_ZSTD_LEVEL)
        return zstandard.ZstdCompressor(level=UNIT_ZSTD_LEVEL, dict_data=found)

    def sessions_with_loose_chunks(self) -> Iterator[tuple[int, str]]:
        """Every (project, session) with chunk files not yet in a unit (e.g. left by a restart), lazily."""
        for project in _subdirs(self.root):
            if not project.name.isdigit():
                continue
            for prefix in _subdirs(project):
                if prefix.name in (TEXTS_DIR, DICTS_DIR):
                    continue
                for session in _subdirs(prefix):
                    if any(n.endswith(CHUNK_SUFFIX) for n in os.listdir(session)):
                        yield int(project.name), session.name


def is_text_ref(value: str) -> bool:
    return len(value) == TEXT_REF_LENGTH and value.startswith(TEXT_REF_PREFIX) and bool(_SHA256.match(value[-64:]))


def text_ref(sha256: str) -> str:
    return TEXT_REF_PREFIX + sha256


def map_strings(value: Any, change: Any) -> Any:
    """``value`` (decoded JSON) with every string passed through ``change``; iterative, as chunks nest deep."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = change(item)
        elif isinstance(item, dict):
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
    return root[0]


def _project_of(key: str) -> int:
    return int(key.split("/", 1)[0])


def _seq_of(name: str) -> int | None:
    stem = name[: -len(CHUNK_SUFFIX)] if name.endswith(CHUNK_SUFFIX) else ""
    return int(stem) if stem.isdigit() else None


def _unit_order(name: str) -> tuple[int, str]:
    generation = name[len(UNIT_PREFIX) :].split("-", 1)[0]
    return (int(generation) if generation.isdigit() else 0, name)


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

