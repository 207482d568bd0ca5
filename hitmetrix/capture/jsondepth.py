"""How deeply a JSON text nests arrays and objects, found in linear time without recursion.

msgspec, like every recursive parser, fails with RecursionError somewhere near
1000 levels, and where exactly depends on how deep the caller's stack already
is: not a limit anyone can document. So bodies and recording chunks pass this
check first. Escapes (a backslash and the byte after it) are removed, then
everything but quotes and brackets is deleted (``bytes.translate``); a bracket
after an odd number of quotes is inside a string and counts for nothing; the
depth is the running maximum of +1 per opening and -1 per closing bracket,
computed with numpy's cumulative sum a block at a time (Arrow's measured 5×
slower here): about 2 ns per input byte in all. For valid JSON the depth is
exact; for invalid JSON it is exact up to the first error, which is as far as
any parser gets before giving up.
"""

from __future__ import annotations

import re
from itertools import accumulate

import numpy as np

_QUOTE = 2
_TO_CODES = bytes.maketrans(b'[{]}"', bytes([1, 1, 0xFF, 0xFF, _QUOTE]))
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'[]{}"')
_ESCAPE = re.compile(rb"\\.", re.S)
# Fewer backslashes than one per this many bytes: removing escapes with _ESCAPE is the faster way.
_SPARSE_ESCAPE_BYTES = 64
_STEP = [0] * 256
_STEP[1], _STEP[0xFF] = 1, -1
# Below this many brackets and quotes a plain loop beats the fixed cost of the numpy calls.
_SMALL_CODES = 512
_BLOCK_CODES = 1 << 20  # bounds the memory the numpy path uses: ~10 bytes per code
# Counting brackets first pays off for bodies (few brackets), not for recording chunks (many).
_COUNT_FIRST_BYTES = 64 * 1024


class JsonTooDeepError(ValueError):
    """Nested deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.reason = str(self)
        self.max_depth = max_depth


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data``: 0 for a scalar, 1 for ``[1, 2]``."""
    return _depth(data, None)


def check_json_depth(data: bytes, max_depth: int) -> None:
    """Raise JsonTooDeepError when ``data`` nests deeper than ``max_depth``; stops at the first level too many."""
    # Brackets inside strings only make this count larger: a cheap bound that settles most bodies.
    if len(data) <= _COUNT_FIRST_BYTES and data.count(b"[") + data.count(b"{") <= max_depth:
        return
    if _depth(data, max_depth) > max_depth:
        raise JsonTooDeepError(max_depth)


def _depth(data: bytes, stop_above: int | None) -> int:
    backslashes = data.count(b"\\")
    if backslashes * _SPARSE_ESCAPE_BYTES < len(data):
        if backslashes:
            data = _ESCAPE.sub(b"", data)  # left to right: a backslash and the byte it escapes
    else:
        # Dense escapes cost the regex ~80 ns each; two replace passes cost ~1 ns per byte.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = data.translate(_TO_CODES, _NOT_STRUCTURAL)
    if len(codes) <= _SMALL_CODES:
        if b"\x02" in codes:
            codes = b"".join(codes.split(b"\x02")[::2])  # the even pieces lie outside strings
        return max(0, max(accumulate(map(_STEP.__getitem__, codes)), default=0))
    has_quotes = b"\x02" in codes
    all_values = np.frombuffer(codes, dtype=np.int8)
    best = level = quotes_odd = 0
    for start in range(0, len(all_values), _BLOCK_CODES):
        values = all_values[start : start + _BLOCK_CODES]
        if has_quotes:
            is_quote = values == _QUOTE
            quotes_seen = np.cumsum(is_quote, dtype=np.int32)
            quotes_seen += quotes_odd
            quotes_odd = int(quotes_seen[-1]) & 1
            values = np.where((quotes_seen & 1).astype(bool) | is_quote, np.int8(0), values)
        # Within a block the levels fit an int32; across blocks they add up as Python ints.
        levels = np.cumsum(values, dtype=np.int32)
        best = max(best, level + int(levels.max()))
        level += int(levels[-1])
        if stop_above is not None and best > stop_above:
            break
    return best
