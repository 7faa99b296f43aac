"""Batches of raw input records → the scoring core → outputs, dead letters and state writes.

Nothing here knows about Faust: ``stream.app`` feeds records in and sends what comes out.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Container, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scoring.book import AccountBook, Output
from scoring.engine import HealthEngine
from scoring.feed import Fed, Outcome, feed
from stream.faust_internals import rocksdb_get, rocksdb_keys, rocksdb_put
from telemetry.codec import BadEvent, decode_event
from telemetry.limits import check_kept_texts
from windows.account import AccountState
from windows.snapshot import encode_state
from windows.telemetry import EventType, TelemetryEvent

log = logging.getLogger(__name__)

#: why a worker forwards a record to another input partition rather than apply it, and
#: the reasons it dead-letters records for besides the decoder's
FORWARD_REASONS = ("wrong_key",)
WORKER_REASONS = ("wrong_key",)


class Fate(StrEnum):
    """What became of an input record, as the worker counts it (with a label: the event
    type, or the reason)."""

    EVENT = "event"
    TICK = "tick"
    DUPLICATE = "duplicate"
    REREAD = "reread"
    DEAD_LETTER = "dead_letter"
    SKIPPED = "skipped"
    FORWARDED = "forwarded"


#: a count's key: the fate and its label ("" for fates without one)
Counted = tuple[Fate, str]


@dataclass(frozen=True, slots=True)
class InputRecord:
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int = 0
    key: bytes | None = None


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
    #: (account id, the account's partition, the record): records keyed by something other
    #: than their account, to append again to the account's partition, keyed by it
    forwards: list[tuple[str, int, InputRecord]] = field(default_factory=list)
    #: account id → partition, for every account whose state the batch changed
    touched: dict[str, int] = field(default_factory=dict)
    #: the newest event time (``ts``, epoch ms) among the batch's events and ticks; -1: none
    newest_event_ms: int = -1


class StrKeyedBytesStore(MutableMapping[str, Any]):
    """A str-keyed view of a bytes-keyed table store that records each key's partition.

    It holds live ``AccountState`` objects and snapshot bytes (after recovery, say). With
    ``max_live`` set, at most that many accounts stay live after a flush: the others, the
    least recently used first, go back to the snapshot just flushed (the same bytes, so
    they cost nothing more) and are decoded on their next event."""

    def __init__(
        self, data: dict[bytes, Any], key_partition: dict[bytes, int], max_live: int | None = None
    ) -> None:
        self.data = data
        self.key_partition = key_partition
        #: the snapshot last written to the changelog, per account: what a revoked
        #: partition's unflushed accounts go back to
        self.flushed: dict[str, bytes] = {}
        self.max_live = max_live
        #: the accounts held live, least recently used first (kept only with ``max_live``)
        self.live: OrderedDict[str, None] = OrderedDict()

    def __getitem__(self, key: str) -> Any:
        return self.data[key.encode()]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key.encode(), default)
        if isinstance(value, bytes):
            # a snapshot recovered from the changelog (or put back by a roll-back): the
            # state to roll back to. It replaces what this worker flushed when it held the
            # partition before: another owner may have written newer snapshots since
            self.flushed[key] = value
        elif self.max_live is not None and key in self.live:
            self.live.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key.encode()] = value
        if self.max_live is not None and isinstance(value, AccountState):
            self.live[key] = None
            self.live.move_to_end(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key.encode()]
        self.live.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self.data)

    def __len__(self) -> int:
        return len(self.data)

    def keys_in_partition(self, partition: int) -> list[str]:
        return [k.decode() for k, p in self.key_partition.items() if p == partition]

    def live_count(self) -> int:
        """How many accounts are held as live objects (the rest as snapshot bytes)."""
        if self.max_live is not None:
            return len(self.live)
        # read at scrape time on the metrics thread: a copy taken at once, not an iteration
        # the worker's thread could change under it
        values = list(self.data.values())
        return sum(1 for value in values if not isinstance(value, bytes))

    def note_partition(self, key: str, partition: int) -> None:
        self.key_partition[key.encode()] = partition

    def persist(self, key: str, partition: int, blob: bytes) -> None:
        self.flushed[key] = blob

    def trim(self, changed: Container[str] = ()) -> None:
        """After a flush: keep at most ``max_live`` accounts live, the others as the
        snapshot just written. ``changed``: accounts changed since the flush began, which
        its snapshots no longer describe; they stay live."""
        if self.max_live is None:
            return
        live, flushed, data = self.live, self.flushed, self.data
        kept = []
        while len(live) > self.max_live:
            key, _ = live.popitem(last=False)
            blob = flushed.get(key)
            if blob is None or key in changed:
                # never written (made for an event that was then refused, say), or changed
                # since: no snapshot to go back to, so it stays live
                kept.append(key)
            else:
                data[key.encode()] = blob
        for key in reversed(kept):
            live[key] = None
            live.move_to_end(key, last=False)

    def roll_back(self, accounts: Iterable[str]) -> None:
        """Put accounts back to their last flushed state (absent if never flushed).

        Their unflushed events were never acknowledged, so whoever owns the partition next
        (perhaps this worker again) reads them again from the last commit."""
        for account in accounts:
            self.live.pop(account, None)
            blob = self.flushed.get(account)
            if blob is None:
                self.data.pop(account.encode(), None)
                self.key_partition.pop(account.encode(), None)
            else:
                self.data[account.encode()] = blob


class RocksAccountStates(MutableMapping[str, Any]):
    """Account states over Faust's RocksDB store, for books larger than memory.

    Live states are kept in an LRU cache of at most ``max_cached`` accounts, trimmed after
    each flush (a dirty state is never evicted before it is written). A miss reads the
    account's snapshot from RocksDB. Flushed snapshots are written to the partition's
    database as well as to the changelog.
    """

    def __init__(self, store: Any, max_cached: int) -> None:
        self.store = store
        self.max_cached = max_cached
        self.cache: OrderedDict[str, Any] = OrderedDict()
        self.partition_of: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        cache = self.cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        blob = rocksdb_get(self.store, key.encode())
        return default if blob is None else blob

    def __setitem__(self, key: str, value: Any) -> None:
        self.cache[key] = value
        self.cache.move_to_end(key)

    def __delitem__(self, key: str) -> None:
        del self.cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache)

    def __len__(self) -> int:
        return len(self.cache)

    def keys_in_partition(self, partition: int) -> list[str]:
        offset_key = self.store.offset_key
        stored = {k.decode() for k in rocksdb_keys(self.store, partition) if k != offset_key}
        stored.update(a for a, p in self.partition_of.items() if p == partition)
        return sorted(stored)

    def note_partition(self, key: str, partition: int) -> None:
        self.partition_of[key] = partition

    def live_count(self) -> int:
        """How many accounts are held as live objects (the rest are in RocksDB)."""
        return len(self.cache)

    def persist(self, key: str, partition: int, blob: bytes) -> None:
        rocksdb_put(self.store, partition, key.encode(), blob)

    def trim(self, changed: Container[str] = ()) -> None:
        """Keep at most ``max_cached`` accounts cached; ``changed`` ones (changed since the
        flush began: RocksDB does not hold what they are now) stay."""
        cache, kept = self.cache, []
        while len(cache) > self.max_cached:
            key, value = cache.popitem(last=False)
            if key in changed:
                kept.append((key, value))
            else:
                self.partition_of.pop(key, None)
        for key, value in reversed(kept):
            cache[key] = value
            cache.move_to_end(key, last=False)

    def roll_back(self, accounts: Iterable[str]) -> None:
        """Drop accounts from the cache: RocksDB holds their last flushed state."""
        for account in accounts:
            self.cache.pop(account, None)
            self.partition_of.pop(account, None)


class BatchScorer:
    """Applies a batch of records to the account book and says what to write where."""

    def __init__(
        self,
        engine: HealthEngine,
        states: StrKeyedBytesStore | RocksAccountStates,
        max_future_skew_ms: int | None = None,
        skip_unknown_types: bool = False,
        wrong_keys: str | None = None,
        home_partition: Callable[[str], int] | None = None,
    ) -> None:
        """``max_future_skew_ms``: refuse events further ahead of the wall clock (None: none)."""
        self.book = AccountBook(engine, states)
        self.max_future_skew_ms = max_future_skew_ms
        #: count events of types this contract does not know instead of dead-lettering them
        #: (a producer ahead of the worker's version)
        self.skip_unknown_types = skip_unknown_types
        if wrong_keys not in (None, "forward", "dead_letter"):
            raise ValueError(f"wrong_keys: {wrong_keys!r} (use forward or dead_letter)")
        if wrong_keys == "forward" and home_partition is None:
            raise ValueError("wrong_keys: forward needs the account's partition (home_partition)")
        #: an event whose record's key is not its account_id: None (not checked), "forward"
        #: it to ``home_partition(account_id)`` unless it is there already, or "dead_letter" it
        #: (``wrong_key``); else one account would have a state in two partitions
        self.wrong_keys = wrong_keys
        self.home_partition = home_partition
        self.states = states
        self.counters: Counter[Counted] = Counter()
        #: the highest offset applied per input partition: a record at or below it is
        #: already in the live state (Faust can seek back, e.g. when recovery completes)
        self.applied: dict[int, int] = {}
        #: a flush under way: an account it has yet to write is written before a record
        #: changes it, so every snapshot of the flush is the account as the flush began
        self.freezing: PendingFlush | None = None

    def rewind(self, offsets: dict[int, int]) -> None:
        """After a roll-back, accept records again from just past these offsets."""
        self.applied.update(offsets)

    def process(self, records: Iterable[InputRecord]) -> BatchResult:
        """Decode, check and feed each record to the book, in order."""
        result = BatchResult()
        applied = self.applied
        now_ms = None if self.max_future_skew_ms is None else int(time.time() * 1000)
        counters = self.counters
        for record in records:
            if record.offset <= applied.get(record.partition, -1):
                counters[Fate.REREAD, ""] += 1
                continue
            applied[record.partition] = record.offset
            event = self._decoded(record, now_ms, result)
            if event is None:
                continue
            if event.ts_ms > result.newest_event_ms:
                result.newest_event_ms = event.ts_ms
            freezing = self.freezing
            if event.type is EventType.TICK:
                if freezing is not None:
                    freezing.freeze_partition(record.partition)
                accounts = self.states.keys_in_partition(record.partition)
                self._note(feed(self.book, event, tick_accounts=accounts), record, event, result)
            elif not self._misplaced(record, event, result):
                if freezing is not None:
                    freezing.freeze(event.account_id)
                fed = self._fed(record, event, result)
                if fed is not None:
                    self._note(fed, record, event, result)
        return result

    def _decoded(
        self, record: InputRecord, now_ms: int | None, result: BatchResult
    ) -> TelemetryEvent | None:
        """The record's event, or None when it is dead-lettered or skipped."""
        try:
            if record.value is None:
                raise BadEvent("empty", "record has no value")
            skew = self.max_future_skew_ms
            if now_ms is None or skew is None:
                event = decode_event(record.value)
            else:
                event = decode_event(record.value, now_ms=now_ms, max_future_skew_ms=skew)
            check_kept_texts(event)
        except BadEvent as exc:
            if exc.reason == "unknown_type" and self.skip_unknown_types:
                self.counters[Fate.SKIPPED, "unknown_type"] += 1
            else:
                self._dead_letter(result, record, exc.reason, str(exc))
            return None
        return event

    def _misplaced(self, record: InputRecord, event: TelemetryEvent, result: BatchResult) -> bool:
        """Whether an event keyed by something other than its account went elsewhere: to
        the dead-letter topic, or forwarded to its account's partition."""
        if self.wrong_keys is None or record.key == event.account_id.encode():
            return False
        if self.wrong_keys == "dead_letter":
            message = (
                f"the record's key {record.key!r:.80} is not its account_id "
                f"{event.account_id!r:.80}"
            )
            self._dead_letter(result, record, "wrong_key", message)
            return True
        if self.home_partition is None:
            return False
        home = self.home_partition(event.account_id)
        if home == record.partition:
            return False
        result.forwards.append((event.account_id, home, record))
        self.counters[Fate.FORWARDED, "wrong_key"] += 1
        return True

    def _fed(self, record: InputRecord, event: TelemetryEvent, result: BatchResult) -> Fed | None:
        """Feed an event to the book; None when applying it failed (then dead-lettered)."""
        try:
            return feed(self.book, event, (record.partition, record.offset))
        except Exception as exc:  # a record must never stop the worker: park it
            log.exception("could not apply the record at %s:%s", record.partition, record.offset)
            self._dead_letter(result, record, "unprocessable", repr(exc))
            return None

    def _note(
        self, fed: Fed, record: InputRecord, event: TelemetryEvent, result: BatchResult
    ) -> None:
        """Count what came of a fed record, and keep its outputs and touched accounts."""
        outcome = fed.outcome
        counters = self.counters
        if outcome is Outcome.TOO_OLD:
            self._dead_letter(result, record, "too_old", fed.error)
            return
        if outcome is Outcome.DUPLICATE:
            counters[Fate.DUPLICATE, ""] += 1
            return
        if outcome is Outcome.ALREADY_APPLIED:
            counters[Fate.REREAD, ""] += 1
            return
        touched = result.touched
        for account_id in fed.touched:
            if account_id not in touched:
                touched[account_id] = record.partition
                if outcome is Outcome.APPLIED:
                    self.states.note_partition(account_id, record.partition)
        if outcome is Outcome.TICKED:
            counters[Fate.TICK, ""] += 1
        else:
            counters[Fate.EVENT, event.type.value] += 1
        result.outputs.extend((a, out, record) for a, out in fed.outputs)

    def _dead_letter(self, result: BatchResult, record: InputRecord, reason: str, why: str) -> None:
        result.dead_letters.append(DeadLetter(record, reason, why))
        self.counters[Fate.DEAD_LETTER, reason] += 1

    def account(self, account_id: str) -> AccountState | None:
        """The account's live state, or None for an account this worker does not hold."""
        if self.states.get(account_id) is None:
            return None
        return self.book.state(account_id)

    def snapshot(self, account_id: str) -> bytes:
        return encode_state(self.book.state(account_id))


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
        #: per input partition, the highest offset acknowledged by a flush so far
        self.flushed_upto: dict[int, int] = {}

    def changed(self, touched: dict[str, int]) -> None:
        """Accounts a batch changed: to write at the next flush."""
        self.dirty.update(touched)

    def published(self, records: Iterable[Any]) -> None:
        """Records whose outputs are written: to acknowledge after the next flush."""
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
        upto = self.flushed_upto
        for message in unacked:
            if message.offset > upto.get(message.partition, -1):
                upto[message.partition] = message.offset
        return dirty, unacked

    def forget_partitions(self, partitions: set[int]) -> list[str]:
        """Drop pending work of revoked partitions; returns the accounts it leaves unflushed.

        Those accounts must go back to their last flushed state: their records were not
        acknowledged, so the partition's next owner reads them again from the last commit.
        """
        dropped = [a for a, p in self.dirty.items() if p in partitions]
        self.dirty = {a: p for a, p in self.dirty.items() if p not in partitions}
        self.unacked = [m for m in self.unacked if m.partition not in partitions]
        return dropped


class PendingFlush:
    """A flush under way: one snapshot per account as it was when the flush began.

    The snapshots are written a slice at a time (``write_some``) while batches go on being
    scored, so a flush of many accounts does not hold every record behind it. An account
    still waiting is written at once when a record is about to change it (``freeze``;
    a tick changes every account of its partition: ``freeze_partition``)."""

    def __init__(
        self, dirty: dict[str, int], unacked: list[Any], write: Callable[[str, int], None]
    ) -> None:
        #: account → partition, not written yet
        self.waiting = dict(dirty)
        self.unacked = unacked
        self.write = write
        self.accounts = len(dirty)

    def freeze(self, account: str) -> None:
        partition = self.waiting.pop(account, None)
        if partition is not None:
            self.write(account, partition)

    def freeze_partition(self, partition: int) -> None:
        for account in [a for a, p in self.waiting.items() if p == partition]:
            self.freeze(account)

    def write_some(self, most: int) -> bool:
        """Write up to ``most`` waiting accounts; whether every account is now written."""
        waiting, write = self.waiting, self.write
        for _ in range(min(most, len(waiting))):
            account, partition = waiting.popitem()
            write(account, partition)
        return not waiting
