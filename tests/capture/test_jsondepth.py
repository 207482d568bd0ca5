"""hitmetrix/capture/jsondepth.py: nesting depth without recursion, exact for valid JSON."""

from __future__ import annotations

import contextlib
import json
import random
import time
from typing import Any

import pytest

from hitmetrix.capture import jsondepth
from hitmetrix.capture.jsondepth import JsonTooDeepError, check_json_depth, json_depth


def reference_depth(value: Any) -> int:
    """The depth of a decoded value, walked with an explicit stack."""
    best = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            best = max(best, level)
            stack += [(child, level + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return best


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'"[[[{{{"', 0),
        (b"[]", 1),
        (b"{}", 1),
        (b'[1, {"a": [2]}]', 3),
        (b'["]", "}", "\\"[", "\\\\", [["\\\\\\"]"]]]', 3),  # brackets, quotes and backslashes inside strings
        (b'{"k\\"[": {"v": "\\\\"}}', 2),
        (b" [ [ ] ] ", 2),
        (b"[" * 600 + b"]" * 600, 600),
    ],
)
def test_known_depths(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth
    assert json_depth(text) == reference_depth(json.loads(text))


_ALPHABET = ["[", "]", "{", "}", '"', "\\", "a", "é", "\n"]


def _random_value(rng: random.Random, level: int) -> Any:
    roll = rng.random()
    if level > 10 or roll < 0.45:
        return rng.choice([1, None, "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6)))])
    if roll < 0.7:
        return [_random_value(rng, level + 1) for _ in range(rng.randint(0, 3))]
    return {"".join(rng.choice(_ALPHABET) for _ in range(3)): _random_value(rng, level + 1) for _ in range(3)}


@pytest.mark.parametrize("path", ["small", "vector", "vector in small blocks", "dense escapes"])
def test_matches_a_parser_on_random_json(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path != "small":
        monkeypatch.setattr(jsondepth, "_SMALL_CODES", 0)
    if path == "vector in small blocks":
        monkeypatch.setattr(jsondepth, "_BLOCK_CODES", 7)  # carries depth and quote parity across blocks
    if path == "dense escapes":
        monkeypatch.setattr(jsondepth, "_SPARSE_ESCAPE_BYTES", 0)  # the replace passes, not the regex
    rng = random.Random(7)
    for _ in range(400):
        value = _random_value(rng, 0)
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
            assert json_depth(text.encode()) == reference_depth(value), text


def test_check_names_the_limit_and_allows_exactly_it() -> None:
    check_json_depth(b"[" * 512 + b"]" * 512, 512)
    with pytest.raises(JsonTooDeepError) as info:
        check_json_depth(b"[" * 513 + b"]" * 513, 512)
    assert info.value.reason == "JSON nested deeper than 512 levels"
    assert isinstance(info.value, ValueError)


def test_unterminated_string_and_invalid_json_cost_linear_time() -> None:
    # A quote that never closes hides what follows, as it would from any parser; nothing rescans.
    assert json_depth(b'"' + b"[" * 100_000) == 0
    assert json_depth(b'["' + b'\\"' * 100_000) == 1
    assert json_depth(b"]]]]" + b"[[") == 0


@pytest.mark.parametrize(
    "hostile",
    [
        b"[" * (8 << 20),  # stops at the first block past the limit
        b"[" + b"[]," * ((8 << 20) // 3) + b"[]]",
        (b"[" * 511 + b"]" * 511) * ((8 << 20) // 1022),
        b'["' + b'[\\"\\\\' * (2 << 20) + b'"]',
    ],
    ids=["open-brackets", "many-pairs", "comb-511", "escapes"],
)
def test_eight_mebibytes_of_hostile_json_is_checked_in_bounded_time(hostile: bytes) -> None:
    started = time.perf_counter()
    with contextlib.suppress(JsonTooDeepError):
        check_json_depth(hostile, 512)
    elapsed_s = time.perf_counter() - started
    assert elapsed_s < 1.0, elapsed_s  # ~30 ms on an idle core; generous for a busy CI machine
