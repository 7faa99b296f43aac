"""BatchScorer: one batch of raw records in, outputs, dead letters and state writes out."""

import orjson
from scenarios import as_lines, silent_account_stream

from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.scorer import (
    BatchScorer,
    Fate,
    InputRecord,
    PendingFlush,
    RocksAccountStates,
    StrKeyedBytesStore,
    WriteBehind,
)
from windows.account import AccountState, Series

PARTITIONS = 3


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), 5))


def as_partitioned_records(lines: list[bytes]) -> list[InputRecord]:
    """Spread a stream over partitions as a producer would: by account, ticks to all."""
    records, offsets = [], [0] * PARTITIONS
    for line in lines:
        obj = orjson.loads(line)
        parts = (
            range(PARTITIONS)
            if obj["type"] == "tick"
            else [sum(obj["account_id"].encode()) % PARTITIONS]
        )
        for p in parts:
            records.append(InputRecord(p, offsets[p], line))
            offsets[p] += 1
    return records


def test_one_big_batch_equals_replay_including_ticks_for_accounts_new_in_the_batch() -> None:
    lines = as_lines(silent_account_stream())
    expected = MemorySink()
    replay(lines, engine(), expected)
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    result = scorer.process(as_partitioned_records(lines))
    got = sorted((o["account_id"], o["seq"], o["score"]) for _, o, _ in result.outputs)
    want = sorted((o["account_id"], o["seq"], o["score"]) for _, o in expected.events)
    assert got == want


def test_touched_accounts_snapshot_and_survive_a_restart() -> None:
    lines = as_lines(silent_account_stream(accounts=3, days=20))
    records = as_partitioned_records(lines)
    half = len(records) // 2
    parts: dict[bytes, int] = {}
    first = BatchScorer(engine(), StrKeyedBytesStore({}, parts))
    r1 = first.process(records[:half])
    assert len(r1.touched) == 4  # three accounts and the silent one
    # a new worker recovers snapshot bytes from the changelog and carries on
    recovered = {a.encode(): first.snapshot(a) for a in r1.touched}
    second = BatchScorer(engine(), StrKeyedBytesStore(recovered, dict(parts)))
    second.process(records[half:])
    straight = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    straight.process(records)
    for account in r1.touched:
        assert second.snapshot(account) == straight.snapshot(account)


def test_a_bounded_live_set_keeps_the_others_as_their_snapshots_and_scores_alike() -> None:
    lines = as_lines(silent_account_stream(accounts=6, days=30))
    records = as_partitioned_records(lines)
    bounded = StrKeyedBytesStore({}, {}, max_live=2)
    scorer = BatchScorer(engine(), bounded)
    straight = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    got, want = [], []
    for start in range(0, len(records), 50):  # a flush after every 50 records
        batch = records[start : start + 50]
        result = scorer.process(batch)
        for account, partition in result.touched.items():
            bounded.persist(account, partition, scorer.snapshot(account))
        bounded.trim()
        live = [v for v in bounded.data.values() if isinstance(v, AccountState)]
        assert len(live) <= 2
        got += [(o["account_id"], o["seq"], o["score"]) for _, o, _ in result.outputs]
        want += [
            (o["account_id"], o["seq"], o["score"]) for _, o, _ in straight.process(batch).outputs
        ]
    assert sum(isinstance(v, bytes) for v in bounded.data.values()) == len(bounded) - 2
    assert got == want and len(got) > 30
    for account in straight.states:
        assert scorer.snapshot(account) == straight.snapshot(account)


def test_a_bounded_live_set_keeps_an_account_never_written_live() -> None:
    store = StrKeyedBytesStore({}, {}, max_live=1)
    for account in ("a", "b", "c"):
        store[account] = AccountState()
    store.persist("b", 0, b"snapshot of b")
    store.persist("c", 0, b"snapshot of c")
    store.trim()
    assert isinstance(store.data[b"a"], AccountState)  # no snapshot to go back to
    assert store.data[b"b"] == b"snapshot of b"  # the least recently used
    assert isinstance(store.data[b"c"], AccountState)
    assert list(store.live) == ["a", "c"]


def test_a_flush_under_way_writes_every_account_as_it_was_when_the_flush_began() -> None:
    lines = as_lines(silent_account_stream(accounts=8, days=30))
    records = as_partitioned_records(lines)
    cut = len(records) // 2
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    dirty = scorer.process(records[:cut]).touched
    as_begun = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    as_begun.process(records[:cut])
    written: dict[str, bytes] = {}

    def write(account: str, partition: int) -> None:
        assert account not in written  # once each
        written[account] = scorer.snapshot(account)

    pending = PendingFlush(dirty, [], write)
    assert not pending.write_some(2)
    scorer.freezing = pending
    later = records[cut:]
    assert any(r.value and b'"tick"' in r.value for r in later[:60])  # ticks, events: both
    for start in range(0, 60, 10):  # batches go on between slices
        scorer.process(later[start : start + 10])
        pending.write_some(1)
    while not pending.write_some(1):
        pass
    assert written.keys() == dirty.keys() and len(dirty) > 3
    for account, blob in written.items():
        assert blob == as_begun.snapshot(account), account
    # the accounts did move on: the snapshots are the flush's, not the accounts' now
    assert any(scorer.snapshot(a) != blob for a, blob in written.items())


def test_a_tick_writes_every_waiting_account_of_its_partition_first() -> None:
    order: list[str] = []
    pending = PendingFlush({"a": 0, "b": 1, "c": 0}, [], lambda a, p: order.append(a))
    pending.freeze_partition(0)
    assert sorted(order) == ["a", "c"] and pending.waiting == {"b": 1}
    pending.freeze("a")  # written already: not again
    pending.freeze("b")
    assert sorted(order) == ["a", "b", "c"] and pending.write_some(5)


def test_trim_keeps_accounts_changed_since_the_flush_began_live() -> None:
    store = StrKeyedBytesStore({}, {}, max_live=1)
    for account in ("a", "b", "c"):
        store[account] = AccountState()
        store.persist(account, 0, f"snapshot of {account}".encode())
    store.trim(changed={"a"})
    assert isinstance(store.data[b"a"], AccountState)  # its snapshot is behind it
    assert store.data[b"b"] == b"snapshot of b"
    assert isinstance(store.data[b"c"], AccountState)

    class Rocks:
        offset_key = b"__offset__"

    cached = RocksAccountStates(Rocks(), max_cached=1)
    for account in ("a", "b", "c"):
        cached[account] = AccountState()
    cached.trim(changed={"a"})
    assert list(cached.cache) == ["a", "c"]


def test_write_behind_flushes_on_interval_or_size_and_forgets_revoked_partitions() -> None:
    class Msg:
        def __init__(self, partition: int, offset: int = 0) -> None:
            self.partition = partition
            self.offset = offset

    wb = WriteBehind(interval_s=2.0, max_dirty=3)
    assert not wb.due(100.0)  # nothing pending
    wb.changed({"a": 0, "b": 1})
    wb.published([Msg(0, 5), Msg(1, 9)])
    wb.last_flush = 99.0
    assert not wb.due(100.0)
    assert wb.due(101.5)  # interval passed
    wb.changed({"c": 2})
    wb.published([Msg(2)])
    assert wb.due(100.0)  # three accounts waiting
    assert wb.forget_partitions({1}) == ["b"]
    dirty, unacked = wb.take(100.0)
    assert dirty == {"a": 0, "c": 2}
    assert [m.partition for m in unacked] == [0, 2]
    assert wb.flushed_upto == {0: 5, 2: 0}
    assert not wb.due(200.0)


def test_records_read_again_after_a_seek_are_not_applied_twice() -> None:
    lines = as_lines(silent_account_stream(accounts=2, days=10))
    records = as_partitioned_records(lines)
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    once = scorer.process(records)
    again = scorer.process(records)  # Faust seeks back to the committed offsets
    assert once.outputs and not again.outputs and not again.touched
    assert scorer.counters[Fate.REREAD, ""] == len(records)
    snapshots = {a: scorer.snapshot(a) for a in once.touched}
    # a roll-back to before everything re-accepts the records
    rolled = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    rolled.process(records[:5])
    rolled.states.roll_back(list(rolled.states))
    rolled.rewind({p: -1 for p in range(PARTITIONS)})
    rolled.process(records)
    assert {a: rolled.snapshot(a) for a in once.touched} == snapshots


def test_bad_records_become_dead_letters_with_reasons() -> None:
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    result = scorer.process([InputRecord(0, 7, b"{nope"), InputRecord(0, 8, None)])
    assert [(d.record.offset, d.reason) for d in result.dead_letters] == [
        (7, "not_json"),
        (8, "empty"),
    ]
    assert scorer.counters[Fate.DEAD_LETTER, "not_json"] == 1


def test_roll_back_returns_to_the_recovered_or_last_flushed_snapshot() -> None:
    lines = as_lines(silent_account_stream(accounts=2, days=12))
    records = as_partitioned_records(lines)
    half = len(records) // 2
    first = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    touched = first.process(records[:half]).touched
    recovered = {a.encode(): first.snapshot(a) for a in touched}
    # a restarted worker: recovered snapshots, then unflushed work that gets revoked
    store = StrKeyedBytesStore(dict(recovered), {})
    second = BatchScorer(engine(), store)
    second.process(records[half:])
    store.roll_back(list(touched))
    assert {a.encode(): second.snapshot(a) for a in touched} == recovered


def test_roll_back_after_a_partition_comes_back_returns_to_the_other_owners_snapshot() -> None:
    """A worker held a partition and flushed; another owner went further and flushed; the
    partition came back and recovery put the newer snapshots in the store. Work revoked
    now goes back to the newer snapshots, not to this worker's old ones."""
    lines = as_lines(silent_account_stream(accounts=2, days=12))
    records = as_partitioned_records(lines)
    third = len(records) // 3
    store = StrKeyedBytesStore({}, {})
    mine = BatchScorer(engine(), store)
    touched = list(mine.process(records[:third]).touched)
    for account in touched:
        store.persist(account, 0, mine.snapshot(account))
    other = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    other.process(records[: 2 * third])
    newer = {a.encode(): other.snapshot(a) for a in touched}
    store.data.update(newer)  # what recovery writes into the table's store
    mine.process(records[2 * third :])
    store.roll_back(touched)
    assert {a.encode(): store.data[a.encode()] for a in touched} == newer


def test_too_old_events_are_dead_lettered_and_resends_counted_not_applied() -> None:
    day = 20_454 * 86_400_000

    def line(event_id: str, ts: int) -> bytes:
        return orjson.dumps(
            {"event_id": event_id, "account_id": "a", "type": "login", "ts": ts, "value": 2}
        )

    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    result = scorer.process(
        [
            InputRecord(0, 0, line("now", day)),
            InputRecord(0, 1, line("now", day)),  # the producer resent it
            InputRecord(0, 2, line("ancient", day - 100 * 86_400_000)),
        ]
    )
    assert [(d.reason, d.record.offset) for d in result.dead_letters] == [("too_old", 2)]
    assert "90 days" in result.dead_letters[0].message
    assert scorer.counters[Fate.DUPLICATE, ""] == 1
    assert scorer.book.state("a").total(Series.LOGINS, 14) == 2
    again = scorer.process([InputRecord(0, 0, line("now", day))])  # read again: skipped
    assert not again.outputs and scorer.counters[Fate.REREAD, ""] == 1


def test_events_from_the_future_are_dead_lettered_against_the_wall_clock() -> None:
    import time

    now = int(time.time() * 1000)
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}), max_future_skew_ms=3_600_000)
    event = b'{"event_id":"%s","account_id":"a","type":"login","ts":%d}'
    result = scorer.process(
        [
            InputRecord(0, 0, event % (b"soon", now + 60_000)),
            InputRecord(0, 1, event % (b"later", now + 86_400_000)),
        ]
    )
    assert [(d.reason, d.record.offset) for d in result.dead_letters] == [("future", 1)]
    assert scorer.counters[Fate.DEAD_LETTER, "future"] == 1


def test_unknown_types_are_dead_lettered_or_skipped_with_a_counter() -> None:
    raw = b'{"event_id":"x","account_id":"a","type":"hologram_viewed","ts":1767225600000}'
    strict = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    assert [d.reason for d in strict.process([InputRecord(0, 0, raw)]).dead_letters] == [
        "unknown_type"
    ]
    lenient = BatchScorer(engine(), StrKeyedBytesStore({}, {}), skip_unknown_types=True)
    assert not lenient.process([InputRecord(0, 0, raw)]).dead_letters
    assert lenient.counters[Fate.SKIPPED, "unknown_type"] == 1


def test_two_ids_whose_crc32_collide_are_both_applied_and_remembered_across_a_snapshot() -> None:
    import zlib

    # found in a tenth of a second among seeded random ids: CRC-32 has 2^32 values only
    first, second = "evt-b63290bd3d18f15d", "evt-0600554ad5347e0f"
    assert zlib.crc32(first.encode()) == zlib.crc32(second.encode())
    day = 20_454 * 86_400_000

    def line(event_id: str, n: int) -> bytes:
        return orjson.dumps(
            {"event_id": event_id, "account_id": "a", "type": "login", "ts": day + n}
        )

    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    scorer.process([InputRecord(0, 0, line(first, 0))])
    # the memory survives a snapshot round trip (a flush, then a restart)
    restored = BatchScorer(engine(), StrKeyedBytesStore({b"a": scorer.snapshot("a")}, {}))
    restored.process([InputRecord(0, 1, line(second, 1)), InputRecord(0, 2, line(first, 2))])
    assert restored.book.state("a").total(Series.LOGINS, 14) == 2
    assert restored.counters[Fate.DUPLICATE, ""] == 1  # the resend of the first, not the second


def _keyed(account: str, event_id: str, key: bytes | None, partition: int, offset: int):
    raw = orjson.dumps(
        {"event_id": event_id, "account_id": account, "type": "login", "ts": 1767225600000}
    )
    return InputRecord(partition, offset, raw, 0, key)


def test_a_record_keyed_by_something_else_is_forwarded_to_its_accounts_partition() -> None:
    home = {"acct-1": 2}.__getitem__
    scorer = BatchScorer(
        engine(), StrKeyedBytesStore({}, {}), wrong_keys="forward", home_partition=home
    )
    result = scorer.process(
        [
            _keyed("acct-1", "e1", b"acct-1", 2, 0),  # keyed by its account: applied
            _keyed("acct-1", "e2", b"user-7", 0, 0),  # keyed by a user, elsewhere: forwarded
            _keyed("acct-1", "e3", None, 1, 0),  # keyed by nothing: forwarded
            _keyed("acct-1", "e4", b"user-7", 2, 1),  # wrong key, right partition: applied
        ]
    )
    assert [(a, p, r.partition, r.offset) for a, p, r in result.forwards] == [
        ("acct-1", 2, 0, 0),
        ("acct-1", 2, 1, 0),
    ]
    assert not result.dead_letters
    assert scorer.book.state("acct-1").total(Series.LOGINS, 14) == 2
    assert scorer.counters[Fate.FORWARDED, "wrong_key"] == 2


def test_a_record_keyed_by_something_else_is_dead_lettered_when_the_settings_say_so() -> None:
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}), wrong_keys="dead_letter")
    result = scorer.process(
        [_keyed("acct-1", "e1", b"acct-1", 2, 0), _keyed("acct-1", "e2", b"user-7", 2, 1)]
    )
    assert [(d.reason, d.record.offset) for d in result.dead_letters] == [("wrong_key", 1)]
    assert "b'user-7'" in result.dead_letters[0].message
    assert not result.forwards and scorer.counters[Fate.DEAD_LETTER, "wrong_key"] == 1
