"""Batches of raw input records → the scoring core → outputs, dead letters and state writes.

Nothing here knows about Faust: ``stream.app`` feeds records in and sends what comes out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from scoring.book import AccountBook, Output
from scoring.engine import HealthEngine
from stream.codec import BadEvent, decode_event
from windows.account import AccountState
from windows.snapshot import encode_state
from windows.telemetry import EventType


@dataclass(frozen=True, slots=True)
class InputRecord:
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: InputRecord
    reason: str
    message: str


@dataclass
class BatchResult:
    #: (account id, output event, the record that caused it)
    outputs: list[tuple[str, Output, InputRecord]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: account id → partition, for every account whose state the batch changed
    touched: dict[str, int] = field(default_factory=dict)


class StrKeyedBytesStore(MutableMapping[str, Any]):
    """A str-keyed view of a bytes-keyed table store that records each key's partition."""

    def __init__(self, data: dict[bytes, Any], key_partition: dict[bytes, int]) -> None:
        self.data = data
        self.key_partition = key_partition

    def __getitem__(self, key: str) -> Any:
        return self.data[key.encode()]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key.encode(), default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self.data)

    def __len__(self) -> int:
        return len(self.data)

    def keys_in_partition(self, partition: int) -> list[str]:
        return [k.decode() for k, p in self.key_partition.items() if p == partition]

    def note_partition(self, key: str, partition: int) -> None:
        self.key_partition[key.encode()] = partition


class BatchScorer:
    """Applies a batch of records to the account book and says what to write where."""

    def __init__(self, engine: HealthEngine, states: StrKeyedBytesStore) -> None:
        self.book = AccountBook(engine, states)
        self.states = states
        self.counters: Counter[str] = Counter()

    def process(self, records: Iterable[InputRecord]) -> BatchResult:
        result = BatchResult()
        touched = result.touched
        book = self.book
        for record in records:
            try:
                if record.value is None:
                    raise BadEvent("empty", "record has no value")
                event = decode_event(record.value)
            except BadEvent as exc:
                result.dead_letters.append(DeadLetter(record, exc.reason, str(exc)))
                self.counters[f"dead_letter:{exc.reason}"] += 1
                continue
            if event.type is EventType.TICK:
                outputs, advanced = book.tick(
                    event.ts_ms, self.states.keys_in_partition(record.partition)
                )
                for account_id in advanced:
                    touched[account_id] = record.partition
                result.outputs.extend((a, o, record) for a, o in outputs)
                self.counters["ticks"] += 1
                continue
            out = book.apply(event)
            if event.account_id not in touched:
                touched[event.account_id] = record.partition
                self.states.note_partition(event.account_id, record.partition)
            self.counters[f"events:{event.type.value}"] += 1
            if out is not None:
                result.outputs.append((event.account_id, out, record))
        return result

    def snapshot(self, account_id: str) -> bytes:
        state = self.book.states[account_id]
        assert isinstance(state, AccountState)
        return encode_state(state)


class WriteBehind:
    """Which accounts await a changelog snapshot, and which input records await their ack.

    Snapshots are written at most once per account per flush, and a flush comes every
    ``interval_s`` or when ``max_dirty`` accounts wait, so an account with many events
    costs one write per flush rather than one per event. Input records are acknowledged
    only after the flush that covers them, so a commit never gets ahead of the changelog.
    """

    def __init__(self, interval_s: float, max_dirty: int) -> None:
        self.interval_s = interval_s
        self.max_dirty = max_dirty
        self.dirty: dict[str, int] = {}
        self.unacked: list[Any] = []
        self.last_flush = 0.0

    def add(self, touched: dict[str, int], records: Iterable[Any]) -> None:
        self.dirty.update(touched)
        self.unacked.extend(records)

    def due(self, now: float) -> bool:
        if not self.unacked:
            return False
        return len(self.dirty) >= self.max_dirty or now - self.last_flush >= self.interval_s

    def take(self, now: float) -> tuple[dict[str, int], list[Any]]:
        """What to write and then acknowledge; the caller must do both."""
        dirty, unacked = self.dirty, self.unacked
        self.dirty, self.unacked = {}, []
        self.last_flush = now
        return dirty, unacked

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop pending work of partitions this worker no longer owns: the new owner
        re-reads those records from the last commit, against the last flushed state."""
        self.dirty = {a: p for a, p in self.dirty.items() if p not in partitions}
        self.unacked = [m for m in self.unacked if m.partition not in partitions]
