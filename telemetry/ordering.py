"""A file's records in time order, whatever order the file keeps them in.

Exports are mostly sorted by customer, not by time. The engine refuses an event older than
what its account, or the clock, has already seen, so such a file replayed as it lies would
score only the few accounts that happen to come last. The offline tools therefore sort the
decoded records by time before replaying them: stably, so records of the same time keep
the file's order (and a file already in time order replays exactly as before). A file too
large to sort in memory is sorted in runs spilled to temporary files, then merged.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import IO, TypeVar

from telemetry.codec import OFFLINE_MIN_TS_MS, BadEvent, event_from_mapping, parse_record
from windows.telemetry import TelemetryEvent

T = TypeVar("T")
Record = tuple[int, TelemetryEvent | BadEvent]
#: records sorted in memory at a time (about 100 MB of events); a larger file is sorted
#: in runs of this many, spilled to temporary files and merged
RUN_SIZE = 250_000
#: records pickled to a run's file at a time: one pickle per record costs several times
#: more, and the merge holds one chunk of every run in memory
_CHUNK = 1024
_TS = itemgetter(0)


@dataclass
class TimeOrder:
    """What putting one file's records in time order found."""

    #: records with a time: events and ticks
    timed: int = 0
    #: records without one (rejected), passed on as they were read
    untimed: int = 0
    #: the timed records were not in time order, and were sorted
    resorted: bool = False


def in_time_order(
    items: Iterable[T],
    ts_of: Callable[[T], int | None],
    order: TimeOrder | None = None,
    *,
    run_size: int = RUN_SIZE,
) -> Iterator[T]:
    """The items by ``ts_of``, ties in their given order; items whose ``ts_of`` is None
    come at once, as read, so the timed ones follow only when all are read.

    ``order``, when given, is filled in as the items go by."""
    if run_size < 1:
        raise ValueError(f"run_size must be at least 1, got {run_size}")
    order = order if order is not None else TimeOrder()
    run: list[tuple[int, T]] = []
    spilled: list[IO[bytes]] = []
    latest: int | None = None
    try:
        for item in items:
            ts = ts_of(item)
            if ts is None:
                order.untimed += 1
                yield item
                continue
            order.timed += 1
            if latest is not None and ts < latest:
                order.resorted = True
            else:
                latest = ts
            run.append((ts, item))
            if len(run) >= run_size:
                spilled.append(_spill(run))
                run = []
        if order.resorted:
            run.sort(key=_TS)  # stable: ties keep the file's order
        ordered: Iterable[tuple[int, T]] = run
        if spilled:
            # ties go to the earlier run first, and the runs are in the file's order
            ordered = heapq.merge(*(_read_run(f) for f in spilled), run, key=_TS)
        for _, item in ordered:
            yield item
    finally:
        for f in spilled:
            f.close()


def events_in_time_order(
    records: Iterable[Record], order: TimeOrder | None = None, *, run_size: int = RUN_SIZE
) -> Iterator[Record]:
    """Decoded ``(row, event or BadEvent)`` records by time; rejected ones first, as read
    (each keeps its row)."""
    return in_time_order(records, _record_ts, order, run_size=run_size)


def contract_line_ts(line: bytes) -> int | None:
    """The time of one line of the event contract, or None for a line that is not one."""
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    try:
        return event_from_mapping(parse_record(line), min_ts_ms=OFFLINE_MIN_TS_MS).ts_ms
    except BadEvent:
        return None


def _record_ts(record: Record) -> int | None:
    event = record[1]
    return None if isinstance(event, BadEvent) else event.ts_ms


def _spill(run: list[tuple[int, T]]) -> IO[bytes]:
    """One run, sorted, in an anonymous temporary file (gone when closed)."""
    run.sort(key=_TS)
    f = tempfile.TemporaryFile()  # noqa: SIM115 - closed by in_time_order
    for start in range(0, len(run), _CHUNK):
        pickle.dump(run[start : start + _CHUNK], f, protocol=pickle.HIGHEST_PROTOCOL)
    f.seek(0)
    return f


def _read_run(f: IO[bytes]) -> Iterator[tuple[int, T]]:
    while True:
        try:
            chunk: list[tuple[int, T]] = pickle.load(f)  # a run this process wrote
        except EOFError:
            return
        yield from chunk
