"""The spool record format: framing, strict reading, and recovery of torn segments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hitmetrix.spool.segment import (
    MAGIC,
    RECORD_HEADER,
    CorruptSegmentError,
    encode_records,
    parse_segment_name,
    read_records,
    recover_open_segment,
    scan_records,
    segment_path,
)

PAYLOADS = [b"first", b"", b"x" * 10_000, bytes(range(256))]


def test_records_round_trip() -> None:
    data = encode_records(PAYLOADS)
    assert data.startswith(MAGIC)
    assert scan_records(data) == (PAYLOADS, len(data), None)


def test_segment_names() -> None:
    assert segment_path(Path("/s"), 42, sealed=False).name == "0000000000000042.open"
    assert parse_segment_name("0000000000000042.seg") == (42, True)
    assert parse_segment_name("0000000000000042.open") == (42, False)
    assert parse_segment_name("0000000000000042.records.seg") is None
    assert parse_segment_name("next_id") is None


def _cut_mid_payload(data: bytes) -> bytes:
    return data[:-3]


def _cut_mid_header(data: bytes) -> bytes:
    return data + RECORD_HEADER.pack(100, 0)[:5]


def _garbage(data: bytes) -> bytes:
    return data + b"\xde\xad\xbe\xef" * 7


def _flip_crc_byte(data: bytes) -> bytes:
    crc_at = len(data) - len(PAYLOADS[-1]) - 4
    return data[:crc_at] + bytes([data[crc_at] ^ 0xFF]) + data[crc_at + 1 :]


def _flip_payload_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _huge_length(data: bytes) -> bytes:
    return data + RECORD_HEADER.pack(0xFFFF_FFFF, 0) + b"tail"


DAMAGE: list[Callable[[bytes], bytes]] = [_cut_mid_header, _garbage, _huge_length]
DAMAGE_LAST: list[Callable[[bytes], bytes]] = [_cut_mid_payload, _flip_crc_byte, _flip_payload_byte]


@pytest.mark.parametrize("damage", DAMAGE + DAMAGE_LAST, ids=lambda f: f.__name__)
def test_reading_a_damaged_sealed_segment_raises(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = segment_path(tmp_path, 1, sealed=True)
    path.write_bytes(damage(encode_records(PAYLOADS)))
    with pytest.raises(CorruptSegmentError):
        list(read_records(path))


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_recovery_keeps_every_record_before_a_torn_tail(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    good = encode_records(PAYLOADS)
    path = segment_path(tmp_path, 7, sealed=False)
    path.write_bytes(damage(good))
    sealed = recover_open_segment(path)
    assert sealed == segment_path(tmp_path, 7, sealed=True)
    assert not path.exists()
    assert sealed.read_bytes() == good
    assert list(read_records(sealed)) == PAYLOADS


@pytest.mark.parametrize("damage", DAMAGE_LAST, ids=lambda f: f.__name__)
def test_recovery_drops_a_damaged_last_record(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = segment_path(tmp_path, 7, sealed=False)
    path.write_bytes(damage(encode_records(PAYLOADS)))
    sealed = recover_open_segment(path)
    assert sealed is not None
    assert sealed.read_bytes() == encode_records(PAYLOADS[:-1])


def test_recovery_stops_at_the_first_bad_record_even_if_later_ones_look_fine(tmp_path: Path) -> None:
    data = bytearray(encode_records(PAYLOADS))
    data[len(MAGIC) + RECORD_HEADER.size] ^= 0xFF  # first payload byte of the first record
    path = segment_path(tmp_path, 3, sealed=False)
    path.write_bytes(bytes(data) + encode_records([b"later"])[len(MAGIC) :])
    assert recover_open_segment(path) is None  # nothing intact before the damage: deleted
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", MAGIC[:3], MAGIC], ids=["empty", "partial-magic", "magic-only"])
def test_recovery_deletes_a_segment_without_records(tmp_path: Path, content: bytes) -> None:
    path = segment_path(tmp_path, 2, sealed=False)
    path.write_bytes(content)
    assert recover_open_segment(path) is None
    assert list(tmp_path.iterdir()) == []


def test_recovery_quarantines_a_file_that_is_not_a_segment(tmp_path: Path) -> None:
    path = segment_path(tmp_path, 2, sealed=False)
    path.write_bytes(b"something else entirely")
    assert recover_open_segment(path) is None
    assert (tmp_path / "quarantine" / path.name).read_bytes() == b"something else entirely"
