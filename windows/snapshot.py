"""Compact, exact binary snapshots of ``AccountState`` for changelogs and stores.

Layout (little-endian):

    header   B version | i clock | i first_day | i last_event_day | H series mask |
             i log partition | q log offset | H count of recent ids
    series   per present series: B encoding | B width | payload
             dense (0):  90 counts of ``width`` bytes, in ring order
             sparse (1): B n | n slot bytes | n counts of ``width`` bytes
    ids      the recent event-id hashes (``event_id_hash``), 8 bytes each
    facts    orjson array of the remaining fields

Version 2 stored CRC-32s of the ids, 4 bytes each. It is still read; its CRC-32s match no
64-bit hash, so they are left out and the account's id memory starts afresh.

Only the buckets are stored; the window sums are derived again on load. They are sums of
integers, so the rebuilt sums equal the incrementally maintained ones exactly.
"""

from __future__ import annotations

import struct
from array import array

import orjson

from windows.account import DERIVED_SLOTS, AccountState, Series
from windows.buckets import COUNT_WIDTHS, HORIZON, DailyBuckets, narrowest_typecode

VERSION = 3
#: the older layouts this version still reads
READABLE = (2, 3)
_HEADER = struct.Struct("<BiiiHiqH")
_DENSE, _SPARSE = 0, 1
#: the rings' widths (``COUNT_WIDTHS``): array typecode → bytes a count, and back
_WIDTH = {code: array(code).itemsize for code, _ in COUNT_WIDTHS}
_TYPECODE = {width: code for code, width in _WIDTH.items()}
#: in the header, or derived (never stored)
_NOT_FACTS = (
    "clock",
    "first_day",
    "last_event_day",
    "series",
    "log_partition",
    "log_offset",
    "recent_ids",
    *DERIVED_SLOTS,
)
#: the state's other fields, in their order in the facts array
FACT_FIELDS = tuple(name for name in AccountState.__slots__ if name not in _NOT_FACTS)
_ZONE_FACT = FACT_FIELDS.index("last_zone")


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can read."""


#: what reading bytes that are not a snapshot raises on the way
_UNREADABLE = (struct.error, IndexError, ValueError, TypeError, orjson.JSONDecodeError)


def encode_state(state: AccountState) -> bytes:
    mask = 0
    parts: list[bytes] = []
    for index, buckets in enumerate(state.series):
        if buckets is None or buckets.is_empty():
            continue
        mask |= 1 << index
        counts = buckets.counts
        peak = max(counts)
        code = narrowest_typecode(peak)
        width = _WIDTH[code]
        nonzero = [slot for slot in range(HORIZON) if counts[slot]]
        if len(nonzero) * (1 + width) + 1 < HORIZON * width:
            values = array(code, [counts[slot] for slot in nonzero])
            parts.append(bytes((_SPARSE, width, len(nonzero))) + bytes(nonzero) + values.tobytes())
        else:
            parts.append(bytes((_DENSE, width)) + array(code, counts).tobytes())
    facts = orjson.dumps([getattr(state, name) for name in FACT_FIELDS])
    ids = bytes(state.recent_ids)
    header = _HEADER.pack(
        VERSION,
        state.clock,
        state.first_day,
        state.last_event_day,
        mask,
        state.log_partition,
        state.log_offset,
        len(ids) // 8,
    )
    return header + b"".join(parts) + ids + facts


def snapshot_zone(blob: bytes) -> str:
    """The account's last emitted zone, read from the snapshot's facts alone: about a
    tenth of a full decode, for counting a recovered book's accounts by zone."""
    try:
        view = memoryview(blob)
        version = view[0]
        if version not in READABLE:
            raise SnapshotError(f"snapshot version {version}, expected one of {READABLE}")
        *_, mask, _, _, n_ids = _HEADER.unpack_from(view, 0)
        pos = _HEADER.size
        while mask:
            if mask & 1:
                encoding, width = view[pos], view[pos + 1]
                pos += (
                    2 + HORIZON * width if encoding == _DENSE else 3 + view[pos + 2] * (1 + width)
                )
            mask >>= 1
        pos += (8 if version == VERSION else 4) * n_ids
        facts = orjson.loads(view[pos:])
        return str(facts[_ZONE_FACT]) if len(facts) > _ZONE_FACT else ""
    except _UNREADABLE as exc:
        raise SnapshotError(f"unreadable account snapshot: {exc}") from exc


def decode_state(blob: bytes) -> AccountState:
    try:
        return _decode(memoryview(blob))
    except _UNREADABLE as exc:
        raise SnapshotError(f"unreadable account snapshot: {exc}") from exc


def _decode(view: memoryview) -> AccountState:
    version = view[0]
    if version not in READABLE:
        raise SnapshotError(f"snapshot version {version}, expected one of {READABLE}")
    _, clock, first_day, last_event_day, mask, log_partition, log_offset, n_ids = (
        _HEADER.unpack_from(view, 0)
    )
    state = AccountState()
    state.clock, state.first_day, state.last_event_day = clock, first_day, last_event_day
    state.log_partition, state.log_offset = log_partition, log_offset
    pos = _HEADER.size
    for index in range(len(Series)):
        if not mask >> index & 1:
            continue
        encoding, width = view[pos], view[pos + 1]
        code = _TYPECODE[width]
        if encoding == _DENSE:
            pos += 2
            ring = array(code)
            ring.frombytes(view[pos : pos + HORIZON * width])
            pos += HORIZON * width
        else:
            n = view[pos + 2]
            pos += 3
            slots = view[pos : pos + n]
            pos += n
            values = array(code)
            values.frombytes(view[pos : pos + n * width])
            pos += n * width
            ring = array(code, bytes(HORIZON * width))
            for slot, count in zip(slots, values, strict=True):
                ring[slot] = count
        buckets = DailyBuckets.of_ring(ring, clock)
        state.series[index] = buckets
    if version == VERSION:
        state.recent_ids = bytearray(view[pos : pos + 8 * n_ids])
        pos += 8 * n_ids
    else:
        pos += 4 * n_ids
    facts = orjson.loads(bytes(view[pos:]))
    if len(facts) > len(FACT_FIELDS):
        raise SnapshotError(f"{len(facts)} facts, this version knows {len(FACT_FIELDS)}")
    # a snapshot written before a fact was added lacks it: it keeps its initial value
    for name, value in zip(FACT_FIELDS, facts, strict=False):
        setattr(state, name, value)
    return state
