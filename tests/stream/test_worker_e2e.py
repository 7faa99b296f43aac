"""The worker through a real Kafka broker: telemetry in, score changes and dead letters out."""

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest
from kafka_io import produce_raw, read_outputs, read_topic
from scenarios import SILENT, as_lines, canonical, silent_account_stream

from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.settings import Settings

pytestmark = pytest.mark.integration

BAD = [b"not json at all", b'{"event_id":"x","account_id":"a","type":"warp","ts":1}', b"\xff\xfe"]


def settings_for(bootstrap: str, store: str = "memory://") -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap_servers=bootstrap,
        app_id=f"hs-test-{run}",
        input_topic=f"telemetry-{run}",
        output_topic=f"scores-{run}",
        dead_letter_topic=f"deadletter-{run}",
        partitions=4,
        store=store,
        # keep only a few live states, so that most events find their account as snapshot
        # bytes: in RocksDB, or in memory
        max_cached_accounts=3,
        max_live_accounts=3,
    )


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_worker_matches_replay_and_dead_letters_bad_input(
    kafka_bootstrap: str, tmp_path: Path, store: str
) -> None:
    settings = settings_for(kafka_bootstrap, store)
    records = silent_account_stream()
    expected = MemorySink()
    replay(
        as_lines(records), HealthEngine(ScoringConfig(load_profile(), settings.min_step)), expected
    )
    want = [e for _, e in expected.events]

    asyncio.run(produce_records(settings, records))
    asyncio.run(produce_raw(kafka_bootstrap, settings.input_topic, BAD))
    worker = WorkerProcess(settings, tmp_path)
    with worker:
        out = asyncio.run(
            read_topic(kafka_bootstrap, settings.output_topic, settings.partitions, len(want), 90)
        )
        dead = asyncio.run(read_topic(kafka_bootstrap, settings.dead_letter_topic, 1, len(BAD), 30))
    got = [orjson.loads(r.value) for r in out]
    assert len(got) == len(want), worker.log_tail()
    # one line says where the worker reads, writes and can be looked at
    said = worker.log_path.read_text()
    assert (
        f"healthstream: worker: broker {kafka_bootstrap} (PLAINTEXT), group {settings.app_id}, "
        f"reading {settings.input_topic}, writing {settings.output_topic}, "
        f"dead letters {settings.dead_letter_topic}, changelog {settings.app_id}-accounts-changelog"
    ) in said
    assert canonical(got) == canonical(want)
    # each output record says what it holds, for a consumer that routes before parsing
    for record, output in zip(out, got, strict=True):
        headers = dict(record.headers)
        assert headers["content-type"] == b"application/json"
        assert headers["kind"] == output["kind"].encode()
        assert headers["schema_version"] == b"1"
        assert record.key == output["account_id"].encode()

    # the silent account's last score changes came from ticks alone, after its last event
    last_own_day = max(r["ts"] for r in records if r.get("account_id") == SILENT) // 86_400_000
    silent = sorted((o for o in got if o["account_id"] == SILENT), key=lambda o: o["seq"])
    from_ticks = [o for o in silent if o["as_of"] > str(_iso_day(last_own_day))]
    assert from_ticks and from_ticks[-1]["zone"] == "critical"
    assert from_ticks[-1]["score"] < from_ticks[0]["previous_score"]

    assert sorted(r.value for r in dead) == sorted(BAD)
    headers = [dict(r.headers) for r in dead]
    assert {h["reason"] for h in headers} == {b"not_json", b"unknown_type", b"not_utf8"}
    assert all(h["source_topic"] == settings.input_topic.encode() for h in headers)
    assert all(int(h["source_offset"]) >= 0 for h in headers)


def _iso_day(day: int) -> str:
    from datetime import date, timedelta

    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def wait_committed(settings: Settings, expect: int, worker: WorkerProcess) -> None:
    if not asyncio.run(wait_for_commits(settings, expect, timeout=90)):
        raise AssertionError(f"not committed in time:\n{worker.log_tail()}")


def kafka_records(records: list[dict], partitions: int) -> int:
    return sum(partitions if r["type"] == "tick" else 1 for r in records)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_restarted_worker_carries_on_from_its_stored_state(
    kafka_bootstrap: str, tmp_path: Path, store: str
) -> None:
    settings = settings_for(kafka_bootstrap, store)
    records = silent_account_stream()
    half = len(records) // 2
    expected = MemorySink()
    engine = HealthEngine(ScoringConfig(load_profile(), settings.min_step))
    replay(as_lines(records), engine, expected)
    want = [e for _, e in expected.events]

    asyncio.run(produce_records(settings, records[:half]))
    first = WorkerProcess(settings, tmp_path)  # the same data directory both times
    with first:
        wait_committed(settings, kafka_records(records[:half], settings.partitions), first)
    asyncio.run(produce_records(settings, records[half:]))
    second = WorkerProcess(settings, tmp_path)
    with second:
        got = read_outputs(kafka_bootstrap, settings.output_topic, settings.partitions, len(want))
    # at least once: an output may come twice (same account and seq), none is missing
    assert sorted(set(canonical(got))) == sorted(set(canonical(want))), second.log_tail()
