"""Windowed per-entity state for detectors, bounded in entries and reporting its memory.

Detectors keep every piece of state in these containers, never in plain dicts
that grow with the traffic: each holds at most ``max_entries`` entities and
drops the least recently touched one beyond that (counted in ``evictions``), so
one million distinct IPs cost a fixed, reported amount of memory.

Time is the events' own ``ts_ms`` (not the wall clock), so replaying the spool
after a restart rebuilds exactly the state the live run had.

- ``SlidingCounter``: how many events an entity had in the last ``window_s``.
  The window is cut into ``buckets`` slices, so the count covers between
  ``window_s * (1 - 1/buckets)`` and ``window_s`` — a threshold of "10 in 5 min"
  fires after 10 events in at most 5 min, never in more.
- ``DistinctCounter``: how many distinct values (usernames, IPs, profile ids)
  an entity had in the window, keeping at most ``max_distinct_per_entity`` of
  them (the oldest go first; the count saturates there).
- ``LastSeen``: the last value recorded per entity (e.g. an account's last
  device, country and time), for "new device" and "impossible travel" rules.
- ``Throttle``: true once per entity per window, so a detector reports a
  crossed threshold once instead of on every later event.

``state_of(detector)`` finds the containers a detector holds, for the engine's
entries / bytes metrics.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

V = TypeVar("V")

# Per-entity overhead of an OrderedDict slot (hash table entry + linked-list node), measured on CPython 3.11.
_ENTRY_BYTES = 104
_LIST_BYTES = 56  # an empty list object
_INT_BYTES = 32  # a list slot (8) plus a non-cached int (24 … 32)
_DICT_BYTES = 232  # a small dict (up to 5 items); larger ones are counted per item
_DICT_ITEM_BYTES = 56


class WindowState:
    """What every container shares: the LRU of entities, the bound and the reporting."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.evictions = 0
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._key_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> Iterable[Hashable]:
        return self._entries.keys()

    def remove(self, key: Hashable) -> None:
        if key in self._entries:
            self._forget(key, self._entries.pop(key))

    def clear(self) -> None:
        self._entries.clear()
        self._key_bytes = 0
        self._reset_value_bytes()

    def bytes_estimate(self) -> int:
        """Approximate memory held (entries, keys and values), without the detector's other objects."""
        return len(self._entries) * _ENTRY_BYTES + self._key_bytes + self._value_bytes()

    def _touch(self, key: Hashable) -> Any:
        """The entity's value (moved to the most recent end), or None when it has none."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def _insert(self, key: Hashable, value: Any) -> None:
        self._entries[key] = value
        self._key_bytes += sys.getsizeof(key)
        while len(self._entries) > self.max_entries:
            old_key, old_value = self._entries.popitem(last=False)
            self._forget(old_key, old_value)
            self.evictions += 1

    def _forget(self, key: Hashable, value: Any) -> None:
        self._key_bytes -= sys.getsizeof(key)
        self._value_removed(value)

    # Subclasses keep a running count of what their values hold.
    def _value_bytes(self) -> int:
        return 0

    def _value_removed(self, value: Any) -> None:
        return None

    def _reset_value_bytes(self) -> None:
        return None


class SlidingCounter(WindowState):
    """Events per entity in the last ``window_s`` seconds (by event time)."""

    def __init__(self, window_s: float, max_entries: int, buckets: int = 10) -> None:
        super().__init__(max_entries)
        if window_s <= 0 or buckets < 1:
            raise ValueError("window_s must be positive and buckets at least 1")
        self.window_ms = int(window_s * 1000)
        self.buckets = buckets
        self._bucket_ms = max(1, self.window_ms // buckets)
        self._cells = 0  # ints held in all values (2 per live bucket)

    def add(self, key: Hashable, ts_ms: int, n: int = 1) -> int:
        """Count ``n`` events for the entity at ``ts_ms``; its count in the window ending then."""
        bucket = ts_ms // self._bucket_ms
        # A value is a flat list [bucket, count, bucket, count, ...], oldest first: 72 bytes for one bucket.
        cells = self._touch(key)
        if cells is None:
            self._insert(key, [bucket, n])
            self._cells += 2
            return n
        before = len(cells)
        self._prune(cells, bucket)
        if cells and cells[-2] == bucket:
            cells[-1] += n
        elif cells and cells[-2] > bucket:  # an event older than the newest bucket: add it where it falls
            self._add_past(cells, bucket, n)
        else:
            cells += (bucket, n)
        self._cells += len(cells) - before
        return sum(cells[1::2])

    def count(self, key: Hashable, ts_ms: int) -> int:
        """The entity's count in the window ending at ``ts_ms`` (0 when unknown); does not touch the LRU."""
        cells = self._entries.get(key)
        if cells is None:
            return 0
        oldest = ts_ms // self._bucket_ms - self.buckets + 1
        return sum(c for b, c in zip(cells[0::2], cells[1::2], strict=True) if oldest <= b <= ts_ms // self._bucket_ms)

    def _prune(self, cells: list[int], bucket: int) -> None:
        oldest = bucket - self.buckets + 1
        drop = 0
        while drop < len(cells) and cells[drop] < oldest:
            drop += 2
        if drop:
            del cells[:drop]

    def _add_past(self, cells: list[int], bucket: int, n: int) -> None:
        if bucket < cells[-2] - self.buckets + 1:
            return  # older than the window the entity is already in: it no longer counts
        for i in range(0, len(cells), 2):
            if cells[i] == bucket:
                cells[i + 1] += n
                return
            if cells[i] > bucket:
                cells[i:i] = [bucket, n]
                return

    def _value_bytes(self) -> int:
        return len(self._entries) * _LIST_BYTES + self._cells * _INT_BYTES // 2

    def _value_removed(self, value: Any) -> None:
        self._cells -= len(value)

    def _reset_value_bytes(self) -> None:
        self._cells = 0


class DistinctCounter(WindowState):
    """Distinct values per entity in the last ``window_s`` seconds, at most ``max_distinct_per_entity`` each."""

    def __init__(self, window_s: float, max_entries: int, max_distinct_per_entity: int = 1000) -> None:
        super().__init__(max_entries)
        if window_s <= 0 or max_distinct_per_entity < 1:
            raise ValueError("window_s must be positive and max_distinct_per_entity at least 1")
        self.window_ms = int(window_s * 1000)
        self.max_distinct_per_entity = max_distinct_per_entity
        self._items = 0  # values held over all entities

    def add(self, key: Hashable, value: Hashable, ts_ms: int) -> int:
        """Record ``value`` for the entity at ``ts_ms``; how many distinct values it has in the window now."""
        seen: dict[Hashable, int] | None = self._touch(key)
        if seen is None:
            self._insert(key, {value: ts_ms})
            self._items += 1
            return 1
        before = len(seen)
        self._expire(seen, ts_ms)
        last = seen.pop(value, None)
        # Re-inserting keeps the dict ordered oldest-first, which is what expiry and the cap rely on.
        seen[value] = ts_ms if last is None else max(last, ts_ms)
        while len(seen) > self.max_distinct_per_entity:
            del seen[next(iter(seen))]
        self._items += len(seen) - before
        return len(seen)

    def count(self, key: Hashable, ts_ms: int) -> int:
        seen = self._entries.get(key)
        if seen is None:
            return 0
        cutoff = ts_ms - self.window_ms
        return sum(1 for t in seen.values() if t > cutoff)

    def values(self, key: Hashable, ts_ms: int) -> list[Hashable]:
        """The entity's distinct values in the window ending at ``ts_ms``, oldest first."""
        seen = self._entries.get(key)
        if seen is None:
            return []
        cutoff = ts_ms - self.window_ms
        return [v for v, t in seen.items() if t > cutoff]

    def has(self, key: Hashable, value: Hashable, ts_ms: int) -> bool:
        seen = self._entries.get(key)
        return seen is not None and seen.get(value, -(2**62)) > ts_ms - self.window_ms

    def _expire(self, seen: dict[Hashable, int], ts_ms: int) -> None:
        cutoff = ts_ms - self.window_ms
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > cutoff:
                return
            del seen[oldest]

    def _value_bytes(self) -> int:
        return len(self._entries) * _DICT_BYTES + max(0, self._items - 5 * len(self._entries)) * _DICT_ITEM_BYTES

    def _value_removed(self, value: Any) -> None:
        self._items -= len(value)

    def _reset_value_bytes(self) -> None:
        self._items = 0


class LastSeen(WindowState, Generic[V]):
    """The last value recorded per entity (any small immutable value, e.g. a tuple), least recent dropped first."""

    def __init__(self, max_entries: int, value_bytes: int = 120) -> None:
        super().__init__(max_entries)
        self._per_value_bytes = value_bytes  # a declared estimate: values are opaque here

    def get(self, key: Hashable) -> V | None:
        return self._entries.get(key)

    def put(self, key: Hashable, value: V) -> V | None:
        """Store ``value`` for the entity; the one it replaces (None the first time)."""
        previous = self._touch(key)
        if previous is None:
            self._insert(key, value)
        else:
            self._entries[key] = value
        return previous

    def _value_bytes(self) -> int:
        return len(self._entries) * self._per_value_bytes


class Throttle(WindowState):
    """``ready(key, ts_ms)`` is true at most once per entity per ``window_s`` (the first time, then after it)."""

    def __init__(self, window_s: float, max_entries: int) -> None:
        super().__init__(max_entries)
        self.window_ms = int(window_s * 1000)

    def ready(self, key: Hashable, ts_ms: int) -> bool:
        last = self._touch(key)
        if last is None:
            self._insert(key, ts_ms)
            return True
        if ts_ms - last >= self.window_ms:
            self._entries[key] = ts_ms
            return True
        return False

    def _value_bytes(self) -> int:
        return len(self._entries) * _INT_BYTES


def state_of(detector: object) -> list[WindowState]:
    """The containers a detector holds as attributes (directly, or in a list / tuple / dict attribute)."""
    found: list[WindowState] = []
    names = list(getattr(detector, "__dict__", {}))
    for cls in type(detector).__mro__:
        names += [n for n in getattr(cls, "__slots__", ()) if isinstance(n, str)]
    for name in names:
        value = getattr(detector, name, None)
        if isinstance(value, WindowState):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [v for v in value if isinstance(v, WindowState)]
        elif isinstance(value, dict):
            found += [v for v in value.values() if isinstance(v, WindowState)]
    return found
