"""The capture wire format (docs/capture-api.md) as msgspec Structs, and its decoder.

Decoding validates types, lengths and id patterns in one pass; the few limits that
depend on settings or need a look at values (batch size, props size, gzip magic)
are checked right after. Every failure is a ``CaptureError`` naming the field.
``check_body_depth`` must run on a body before anything decodes it: msgspec
recurses per nesting level and would otherwise fail with RecursionError.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

import msgspec

from hitmetrix.capture.jsondepth import JsonTooDeepError, check_json_depth

MAX_CHUNKS_PER_BATCH = 50
MAX_PROPS_BYTES = 16 * 1024
# The wire carries chunk data as base64 of at most 1.5 MiB; decoded that is 3/4 of it.
MAX_CHUNK_BASE64_BYTES = 1536 * 1024
MAX_CHUNK_DATA_BYTES = MAX_CHUNK_BASE64_BYTES * 3 // 4
GZIP_MAGIC = b"\x1f\x8b"

# What the browser route takes: "request" and "auth" come only from server sources (ServerEvent), so
# a browser can neither send nor forge them.
EventType = Literal["pageview", "click", "submit", "scroll", "error", "pageleave", "custom", "identify", "signals"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
ServerEventType = Literal["request", "auth"]
SERVER_EVENT_TYPES: tuple[str, ...] = get_args(ServerEventType)
# Every type a stored event may have.
ALL_EVENT_TYPES: tuple[str, ...] = EVENT_TYPES + SERVER_EVENT_TYPES

ClientId = Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# Milliseconds since the epoch; 2**53 keeps them exact in JavaScript and in doubles.
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Pixels = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
# A client-made event id: a canonical lower-case UUID, stored as the event's id.
EventId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class IncomingEvent(msgspec.Struct, kw_only=True, gc=False):
    type: EventType
    ts: EpochMs
    # Made by the client, kept across retries; the server makes one when absent.
    id: EventId | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    title: Annotated[str, msgspec.Meta(max_length=512)] = ""
    referrer: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    selector: Annotated[str, msgspec.Meta(max_length=512)] = ""
    tag: Annotated[str, msgspec.Meta(max_length=32)] = ""
    text: Annotated[str, msgspec.Meta(max_length=256)] = ""
    x: Pixels = 0
    y: Pixels = 0
    vw: Pixels = 0
    vh: Pixels = 0
    # Kept as raw JSON: it is stored as JSON text, so decoding it to dicts would be wasted work.
    props: msgspec.Raw = msgspec.Raw()


class IncomingChunk(msgspec.Struct, kw_only=True, gc=False):
    seq: Count
    first_ts: EpochMs
    last_ts: EpochMs
    count: Count
    # msgspec decodes the base64 string into bytes; the limit applies to the decoded bytes.
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_DATA_BYTES)]


class IncomingBatch(msgspec.Struct, kw_only=True, gc=False):
    session_id: ClientId
    anonymous_id: ClientId
    # Made by the client once per batch and resent unchanged on every retry: the loader stores a
    # (project, session, batch_id) once, so a retry after a lost response is not stored twice.
    batch_id: ClientId | None = None
    key: Annotated[str, msgspec.Meta(max_length=64)] = ""
    user_id: Annotated[str, msgspec.Meta(max_length=256)] = ""
    sent_at: EpochMs | None = None
    events: list[IncomingEvent] = []
    recording: list[IncomingChunk] = []


class _KeyOnly(msgspec.Struct, gc=False):
    key: str = ""


class CaptureError(Exception):
    """A request the capture endpoint refuses: HTTP status, message and, for schema errors, the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


_batch_decoder = msgspec.json.Decoder(IncomingBatch)
_key_decoder = msgspec.json.Decoder(_KeyOnly)
_PATH_SUFFIX = re.compile(r" - at `(\$[^`]*)`$")


def _schema_error(exc: msgspec.ValidationError) -> CaptureError:
    message = str(exc)
    match = _PATH_SUFFIX.search(message)
    if match is None:
        return CaptureError(400, message, "$")
    return CaptureError(400, message[: match.start()], match.group(1))


def check_body_depth(raw: bytes, max_depth: int) -> None:
    """400 when the (decompressed) body nests arrays and objects deeper than ``max_depth``."""
    try:
        check_json_depth(raw, max_depth)
    except JsonTooDeepError as exc:
        raise CaptureError(400, f"body {exc.reason}", "$") from None


def decode_batch_body(raw: bytes, *, max_events: int = 1000) -> IncomingBatch:
    """Decode and validate a (decompressed, depth-checked) request body, or raise ``CaptureError``."""
    try:
        # msgspec checks UTF-8 in the strings it decodes, not in the props it keeps raw:
        # checking the whole body once makes every Raw slice valid UTF-8 too.
        raw.decode()
        batch = _batch_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
    except UnicodeDecodeError as exc:
        raise CaptureError(400, f"body is not valid UTF-8: {exc.reason} at byte {exc.start}", "$") from None
    except (msgspec.DecodeError, ValueError) as exc:
        raise CaptureError(400, f"malformed JSON: {exc}", "$") from None
    except RecursionError:  # only without check_body_depth, or with a max_depth the parser cannot take
        raise CaptureError(400, "body nested too deep to decode", "$") from None
    if len(batch.events) > max_events:
        raise CaptureError(413, f"too many events: {len(batch.events)} > {max_events}", "$.events")
    if len(batch.recording) > MAX_CHUNKS_PER_BATCH:
        raise CaptureError(
            413, f"too many recording chunks: {len(batch.recording)} > {MAX_CHUNKS_PER_BATCH}", "$.recording"
        )
    for index, event in enumerate(batch.events):
        if event.props:
            _check_props(event.props, f"$.events[{index}].props")
    for index, chunk in enumerate(batch.recording):
        if chunk.data[:2] != GZIP_MAGIC:
            raise CaptureError(400, "chunk data is not base64 of gzip", f"$.recording[{index}].data")
    return batch


def _check_props(props: msgspec.Raw, field: str) -> None:
    if len(props) > MAX_PROPS_BYTES:
        raise CaptureError(400, f"props larger than {MAX_PROPS_BYTES} bytes as JSON", field)
    # A Raw holds exactly one JSON value, without surrounding whitespace.
    if memoryview(props)[0] != 0x7B and bytes(props) != b"null":  # 0x7B: "{"
        raise CaptureError(400, "props must be an object", field)


def props_text(props: msgspec.Raw) -> str:
    """A validated props value as JSON text; "" when absent, null or empty."""
    if not props:
        return ""
    text = bytes(props).decode()
    return "" if text == "{}" or text == "null" else text


def key_in_body(raw: bytes) -> str:
    """The ``key`` field of a body, without validating the rest: cheap enough to run before the key check."""
    try:
        return _key_decoder.decode(raw).key
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
    except (msgspec.DecodeError, ValueError) as exc:
        raise CaptureError(400, f"malformed JSON: {exc}", "$") from None
    except RecursionError:
        raise CaptureError(400, "body nested too deep to decode", "$") from None


# --- server sources: POST /api/v1/server/batch (docs/capture-api.md, "Server batch") ---------------------

# An HTTP method token (RFC 9110); log lines carry odd ones from scanners, which we keep as sent.
HttpMethod = Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]*$")]
# The tracker's session id (cookie hm_sid) or "": then capture makes a per-day request-timeline id.
OptionalClientId = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^([A-Za-z0-9_-]{8,64})?$")]
AuthKind = Literal["signin", "signup", "reset", "signout"]
ServerSource = Literal["middleware", "log"]
MAX_PATH_CHARS = 2048
MAX_QUERY_CHARS = 4096
MAX_SERVER_USER_AGENT_CHARS = 1024


class ServerEvent(msgspec.Struct, kw_only=True, gc=False, forbid_unknown_fields=True):
    """One request or auth outcome seen by the site's server. There is no password field, and unknown
    fields are refused, so a password (or any other field a sender adds by mistake) never rides along."""

    type: ServerEventType
    id: EventId
    ts: EpochMs
    ip: Annotated[str, msgspec.Meta(max_length=64)] = ""
    user_agent: Annotated[str, msgspec.Meta(max_length=MAX_SERVER_USER_AGENT_CHARS)] = ""
    session_id: OptionalClientId = ""
    user_id: Annotated[str, msgspec.Meta(max_length=256)] = ""
    # request
    method: HttpMethod = ""
    path: Annotated[str, msgspec.Meta(max_length=MAX_PATH_CHARS)] = ""
    query: Annotated[str, msgspec.Meta(max_length=MAX_QUERY_CHARS)] = ""
    route: Annotated[str, msgspec.Meta(max_length=512)] = ""
    status: Annotated[int, msgspec.Meta(ge=0, le=999)] = 0
    duration_ms: Annotated[float, msgspec.Meta(ge=0, le=86_400_000)] = 0.0
    bytes: Annotated[int, msgspec.Meta(ge=0, le=2**53)] = 0
    referrer: Annotated[str, msgspec.Meta(max_length=MAX_PATH_CHARS)] = ""
    # auth
    kind: AuthKind | None = None
    ok: bool | None = None
    username: Annotated[str, msgspec.Meta(max_length=320)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ServerBatch(msgspec.Struct, kw_only=True, gc=False, forbid_unknown_fields=True):
    batch_id: ClientId
    source: ServerSource
    sent_at: EpochMs | None = None
    events: list[ServerEvent] = []


_server_batch_decoder = msgspec.json.Decoder(ServerBatch)


def decode_server_batch(raw: bytes, *, max_events: int = 1000) -> ServerBatch:
    """Decode and validate a (decompressed, depth-checked) server batch body, or raise ``CaptureError``."""
    try:
        raw.decode()
        batch = _server_batch_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
    except UnicodeDecodeError as exc:
        raise CaptureError(400, f"body is not valid UTF-8: {exc.reason} at byte {exc.start}", "$") from None
    except (msgspec.DecodeError, ValueError) as exc:
        raise CaptureError(400, f"malformed JSON: {exc}", "$") from None
    except RecursionError:
        raise CaptureError(400, "body nested too deep to decode", "$") from None
    if len(batch.events) > max_events:
        raise CaptureError(413, f"too many events: {len(batch.events)} > {max_events}", "$.events")
    for index, event in enumerate(batch.events):
        if event.type == "auth":
            if event.kind is None:
                message = "an auth event needs kind: signin, signup, reset or signout"
                raise CaptureError(400, message, f"$.events[{index}].kind")
            if event.ok is None:
                raise CaptureError(400, "an auth event needs ok: true or false", f"$.events[{index}].ok")
    return batch
