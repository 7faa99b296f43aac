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
    #: account id → (partition, snapshot bytes): one state write per account per batch
    state_writes: dict[str, tuple[int, bytes]] = field(default_factory=dict)


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
        touched: dict[str, int] = {}
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
        for account_id, partition in touched.items():
            state = book.states[account_id]
            assert isinstance(state, AccountState)
            result.state_writes[account_id] = (partition, encode_state(state))
        return result
