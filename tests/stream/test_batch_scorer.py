"""BatchScorer: one batch of raw records in, outputs, dead letters and state writes out."""

import orjson
from scenarios import as_lines, silent_account_stream

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.replay import replay
from stream.worker import BatchScorer, InputRecord, StrKeyedBytesStore
from windows.snapshot import decode_state, encode_state

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


def test_state_is_written_once_per_account_per_batch_and_survives_a_restart() -> None:
    lines = as_lines(silent_account_stream(accounts=3, days=20))
    records = as_partitioned_records(lines)
    half = len(records) // 2
    data: dict[bytes, object] = {}
    parts: dict[bytes, int] = {}
    first = BatchScorer(engine(), StrKeyedBytesStore(data, parts))
    r1 = first.process(records[:half])
    assert len(r1.state_writes) == 4  # three accounts and the silent one, once each
    # a new worker recovers snapshot bytes from the changelog and carries on
    recovered = {k.encode(): blob for k, (_, blob) in r1.state_writes.items()}
    second = BatchScorer(engine(), StrKeyedBytesStore(recovered, dict(parts)))
    r2 = second.process(records[half:])
    straight = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    r_all = straight.process(records)
    for account, (_, blob) in r_all.state_writes.items():
        assert encode_state(decode_state(r2.state_writes[account][1])) == blob


def test_bad_records_become_dead_letters_with_reasons() -> None:
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    result = scorer.process([InputRecord(0, 7, b"{nope"), InputRecord(0, 8, None)])
    assert [(d.record.offset, d.reason) for d in result.dead_letters] == [
        (7, "not_json"),
        (8, "empty"),
    ]
    assert scorer.counters["dead_letter:not_json"] == 1
