"""hitmetrix/capture/schema.py: the wire format and every limit."""

from __future__ import annotations

import base64
import json

import pytest

from hitmetrix.capture.schema import (
    MAX_CHUNK_BASE64_BYTES,
    MAX_PROPS_BYTES,
    CaptureError,
    check_body_depth,
    decode_batch_body,
    key_in_body,
)
from tests.capture.builders import batch_dict, body_bytes


def refused(body: dict | bytes, **kwargs: int) -> CaptureError:
    raw = body if isinstance(body, bytes) else body_bytes(body)
    with pytest.raises(CaptureError) as info:
        decode_batch_body(raw, **kwargs)
    return info.value


def test_good_batch_decodes() -> None:
    batch = decode_batch_body(body_bytes(batch_dict(events=2, chunks=1, user_id="alice@example.com")))
    assert batch.session_id == "sess_0001"
    assert batch.user_id == "alice@example.com"
    assert [e.url for e in batch.events] == ["https://shop.example/p/0", "https://shop.example/p/1"]
    assert bytes(batch.events[0].props) == b'{"nav": "load"}'
    assert batch.recording[0].data[:2] == b"\x1f\x8b"


def test_unknown_fields_are_ignored() -> None:
    body = batch_dict(events=1, future_field=1)
    body["events"][0]["future"] = {"a": 1}
    assert len(decode_batch_body(body_bytes(body)).events) == 1


def test_url_too_long_names_the_field() -> None:
    body = batch_dict(events=1)
    body["events"][0]["url"] = "https://x.example/" + "a" * 2048
    error = refused(body)
    assert (error.status, error.field) == (400, "$.events[0].url")
    assert "2048" in error.message and "$" not in error.message


@pytest.mark.parametrize(
    ("field", "limit"),
    [("title", 512), ("referrer", 2048), ("name", 200), ("selector", 512), ("tag", 32), ("text", 256)],
)
def test_string_limits(field: str, limit: int) -> None:
    body = batch_dict(events=2)
    body["events"][1][field] = "a" * limit
    decode_batch_body(body_bytes(body))
    body["events"][1][field] = "a" * (limit + 1)
    assert refused(body).field == f"$.events[1].{field}"


@pytest.mark.parametrize("bad_id", ["short", "a" * 65, "has space1", "dots.are.bad", ""])
def test_bad_session_id(bad_id: str) -> None:
    error = refused(batch_dict(session_id=bad_id))
    assert (error.status, error.field) == (400, "$.session_id")


def test_missing_anonymous_id() -> None:
    body = batch_dict()
    del body["anonymous_id"]
    error = refused(body)
    assert error.status == 400 and "anonymous_id" in error.message


def test_unknown_event_type() -> None:
    body = batch_dict(events=1)
    body["events"][0]["type"] = "rage"
    assert refused(body).field == "$.events[0].type"


@pytest.mark.parametrize("ts", [-1, 1.5, "1764255600000", 2**60])
def test_bad_ts(ts: object) -> None:
    body = batch_dict(events=1)
    body["events"][0]["ts"] = ts
    assert refused(body).field == "$.events[0].ts"


def test_too_many_events_is_413() -> None:
    decode_batch_body(body_bytes(batch_dict(events=10)), max_events=10)
    error = refused(batch_dict(events=11), max_events=10)
    assert (error.status, error.field) == (413, "$.events")
    assert "11 > 10" in error.message


def test_too_many_chunks_is_413() -> None:
    decode_batch_body(body_bytes(batch_dict(events=0, chunks=50)))
    error = refused(batch_dict(events=0, chunks=51))
    assert (error.status, error.field) == (413, "$.recording")


def test_bad_base64() -> None:
    body = batch_dict(events=0, chunks=2)
    body["recording"][1]["data"] = "not base64!"
    error = refused(body)
    assert (error.status, error.field) == (400, "$.recording[1].data")


def test_data_without_gzip_magic() -> None:
    body = batch_dict(events=0, chunks=1)
    body["recording"][0]["data"] = base64.b64encode(b'[{"type": 4}]').decode()
    error = refused(body)
    assert (error.status, error.field) == (400, "$.recording[0].data")
    assert "gzip" in error.message


def test_chunk_data_size_limit() -> None:
    body = batch_dict(events=0, chunks=1)
    body["recording"][0]["data"] = base64.b64encode(b"\x1f\x8b" + b"\0" * (MAX_CHUNK_BASE64_BYTES * 3 // 4)).decode()
    assert refused(body).field == "$.recording[0].data"


def test_props_too_large() -> None:
    body = batch_dict(events=2)
    body["events"][1]["props"] = {"blob": "x" * MAX_PROPS_BYTES}
    error = refused(body)
    assert (error.status, error.field) == (400, "$.events[1].props")


def test_props_must_be_an_object() -> None:
    body = batch_dict(events=1)
    body["events"][0]["props"] = [1, 2]
    assert refused(body).field == "$.events[0].props"


def test_props_null_is_empty() -> None:
    body = batch_dict(events=1)
    body["events"][0]["props"] = None
    decode_batch_body(body_bytes(body))


def test_props_invalid_utf8() -> None:
    raw = body_bytes(batch_dict(events=1)).replace(b'"load"', b'"\xff"')
    error = refused(raw)
    assert (error.status, error.field) == (400, "$")
    assert "UTF-8" in error.message


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"null", b'{"session_id": "\xff\xfe"}', b"\x1f\x8b\x08"])
def test_malformed_bodies(raw: bytes) -> None:
    error = refused(raw)
    assert error.status == 400 and error.field is not None and error.field.startswith("$")


def test_key_in_body() -> None:
    assert key_in_body(json.dumps({"key": "hm_pk_a", "events": [{"anything": 1}]}).encode()) == "hm_pk_a"
    assert key_in_body(b"{}") == ""
    with pytest.raises(CaptureError):
        key_in_body(b"not json")
    with pytest.raises(CaptureError):
        key_in_body(b'{"key": 5}')


def test_body_depth_is_checked_before_decoding() -> None:
    check_body_depth(body_bytes(batch_dict(events=50)), 8)  # a normal batch nests 4 deep
    nested = body_bytes(batch_dict(events=1, extra=[[[[[[[[[1]]]]]]]]]))
    with pytest.raises(CaptureError) as info:
        check_body_depth(nested, 8)
    assert (info.value.status, info.value.field) == (400, "$")
    assert "nested deeper than 8" in info.value.message


@pytest.mark.parametrize("where", ["unknown field", "props", "event field"])
def test_decoding_a_deep_body_is_400_not_recursion_error(where: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = body_bytes(batch_dict(events=1))
    if where == "unknown field":
        raw = body[:-1] + b', "zz": ' + deep.encode() + b"}"
    elif where == "props":
        raw = body.replace(b'{"nav": "load"}', b'{"nav": ' + deep.encode() + b"}")
    else:
        raw = body.replace(b'"https://shop.example/p/0"', deep.encode())
    with pytest.raises(CaptureError) as info:
        check_body_depth(raw, 512)
    assert info.value.field == "$"
    # Without the depth check first, the decoders still answer 400 and never raise RecursionError.
    assert refused(raw).status == 400
    with pytest.raises(CaptureError):
        key_in_body(raw)
