"""Records that could stop the worker or split an account, through the real Kafka protocol.

A 5 MB record, records keyed by something other than their account, an account whose id
was once the changelog's flush mark, and dead letters that keep what was read.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from kafka_io import fresh_settings, read_topic, read_until_quiet, records_in_kafka

from healthstream.dev.offsets import committed_input_records, wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import produce_records, topic_layout
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.app import FLUSH_MARK
from stream.kafka import create_topics
from stream.settings import Settings
from windows.account import Series
from windows.snapshot import decode_state

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
T0 = 20_454 * DAY_MS  # 2026-01-01


def _login(account: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{account}-e{n}",
        "account_id": account,
        "type": "login",
        "ts": T0 + n * DAY_MS // 2,
        "user_id": f"{account}-u{n % 3}",
    }


async def _send(
    settings: Settings,
    records: list[tuple[bytes | None, bytes | None, int | None]],
    max_request_size: int = 1_048_576,
) -> None:
    """Send (key, value, partition) records as they are, creating the topics first."""
    await create_topics(settings.bootstrap_servers, topic_layout(settings))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, max_request_size=max_request_size
    )
    await producer.start()
    try:
        for key, value, partition in records:
            await producer.send_and_wait(settings.input_topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def _expected_outputs(records: list[dict[str, Any]], settings: Settings) -> set[bytes]:
    sink = MemorySink()
    engine = HealthEngine(ScoringConfig(load_profile(), settings.min_step))
    replay([orjson.dumps(r) for r in records], engine, sink)
    return {orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in sink.events}


def _outputs(settings: Settings) -> list[dict[str, Any]]:
    found = asyncio.run(
        read_until_quiet(settings.bootstrap_servers, settings.output_topic, settings.partitions)
    )
    return [orjson.loads(r.value) for r in found]


def _committed(settings: Settings, records: int, worker: WorkerProcess) -> None:
    if not asyncio.run(wait_for_commits(settings, records, timeout=180)):
        raise AssertionError(f"not committed in time:\n{worker.log_tail()}")


def test_a_5_mb_record_is_dead_lettered_as_a_reference_and_the_worker_commits_past_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "big")
    records = list(generate(Scenario(accounts=6, days=10, seed=5)))
    half = len(records) // 2
    big = b'{"event_id":"big","account_id":"acct-big","type":"login","pad":"'
    big += b"x" * 5_000_000 + b'"}'
    asyncio.run(produce_records(settings, records[:half]))
    # the broker takes it from a producer whose max_request_size allows it
    asyncio.run(_send(settings, [(b"acct-big", big, 0)], max_request_size=6_000_000))
    asyncio.run(produce_records(settings, records[half:]))
    total = records_in_kafka(records, settings.partitions) + 1

    worker = WorkerProcess(settings, tmp_path)
    with worker:
        _committed(settings, total, worker)  # past the record, and everything after it
        dead = asyncio.run(read_topic(kafka_bootstrap, settings.dead_letter_topic, 1, 1, 30))
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
    got = {orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in _outputs(settings)}
    assert got == _expected_outputs(records, settings)

    (letter,) = dead
    headers = dict(letter.headers)
    assert headers["reason"] == b"oversized" and headers["form"] == b"reference"
    assert letter.key == b"acct-big"
    assert len(letter.value) < 4096  # well within any producer's limit
    reference = orjson.loads(letter.value)
    assert reference["topic"] == settings.input_topic
    assert (reference["partition"], reference["value_bytes"]) == (0, len(big))
    assert reference["offset"] == int(headers["source_offset"]) >= 0
    assert reference["value_prefix"].startswith('{"event_id":"big","account_id":"acct-big"')


def test_dead_letters_keep_the_key_and_value_as_read(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = fresh_settings(kafka_bootstrap, "dlkey")
    bad = [
        (b"acct-bad", b"not json at all"),
        (b"acct-gone", None),  # a tombstone
        (None, b'{"event_id":"x","account_id":"a","type":"warp","ts":1}'),
    ]
    asyncio.run(_send(settings, [(k, v, 0) for k, v in bad]))
    asyncio.run(produce_records(settings, [_login("acct-1", 0)]))
    worker = WorkerProcess(settings, tmp_path)
    with worker:
        _committed(settings, len(bad) + 1, worker)
        dead = asyncio.run(read_topic(kafka_bootstrap, settings.dead_letter_topic, 1, 3, 30))
    assert sorted(((r.key, r.value) for r in dead), key=repr) == sorted(bad, key=repr)
    reasons = {r.key: dict(r.headers)["reason"] for r in dead}
    assert reasons == {b"acct-bad": b"not_json", b"acct-gone": b"empty", None: b"unknown_type"}
    assert all(dict(r.headers)["form"] == b"record" for r in dead)


def test_an_account_named_like_the_old_flush_mark_keeps_its_state_across_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "mark")
    named = "\x00healthstream-flush"  # the flush mark's key until it became invalid UTF-8
    records = [_login(account, n) for n in range(12) for account in (named, "acct-1")]
    records.append(
        {
            "event_id": "ov-1",
            "account_id": named,
            "type": "manual_override",
            "ts": T0 + 7 * DAY_MS,
            "attrs": {"score": 20, "reason": "test", "expires_at": T0 + 30 * DAY_MS},
        }
    )
    half = 12
    asyncio.run(produce_records(settings, records[:half]))
    first = WorkerProcess(settings, tmp_path / "first")
    with first:
        _committed(settings, half, first)
        time.sleep(1.0)  # a flush with nothing new: its marks must not touch the account
    asyncio.run(produce_records(settings, records[half:]))
    second = WorkerProcess(settings, tmp_path / "second")  # recovers from the changelog
    with second:
        _committed(settings, len(records), second)

    got = {orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in _outputs(settings)}
    assert got == _expected_outputs(records, settings), second.log_tail()
    changelog = asyncio.run(
        read_until_quiet(kafka_bootstrap, f"{settings.app_id}-accounts-changelog", 4)
    )
    latest = {r.key: r.value for r in changelog}
    assert latest[named.encode()] is not None  # a snapshot, not a tombstone
    assert decode_state(latest[named.encode()]).total(Series.LOGINS, 90) == 12
    assert latest[FLUSH_MARK] is None


def _assignments(worker: WorkerProcess) -> list[list[int]]:
    found = re.findall(r"scoring input partitions \[([\d, ]*)\]", worker.log_path.read_text())
    return [[int(p) for p in group.split(",") if p.strip()] for group in found]


def _both_hold_partitions(workers: list[WorkerProcess], partitions: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        held = [_assignments(w) for w in workers]
        if all(held) and sorted(p for h in held for p in h[-1]) == list(range(partitions)):
            if all(h[-1] for h in held):
                return
        time.sleep(0.5)
    raise AssertionError("\n".join(w.log_tail() for w in workers))


def test_records_keyed_by_something_else_meet_their_account_in_one_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "keys")
    parts = settings.partitions
    accounts = [f"acct-{n}" for n in range(12)]
    home = {a: (murmur2(a.encode()) & 0x7FFFFFFF) % parts for a in accounts}
    sends: list[tuple[bytes | None, bytes | None, int | None]] = []
    for n in range(30):
        for account in accounts:
            value = orjson.dumps(_login(account, n))
            if n % 3 == 0:  # keyed by its account, in its partition
                sends.append((account.encode(), value, home[account]))
            elif n % 3 == 1:  # keyed by a user, which lands elsewhere
                sends.append((f"user-{n}".encode(), value, (home[account] + 1) % parts))
            else:  # keyed by nothing, anywhere
                sends.append((None, value, (home[account] + 2) % parts))
    forwarded = sum(1 for key, _, _ in sends if key is None or key.startswith(b"user-"))
    asyncio.run(create_topics(kafka_bootstrap, topic_layout(settings)))
    workers = [WorkerProcess(settings, tmp_path / name) for name in ("one", "two")]
    try:
        for worker in workers:
            worker.start()
        _both_hold_partitions(workers, parts)
        asyncio.run(_send(settings, sends))
        _committed(settings, len(sends), workers[0])
        # every record once where it was sent, and the forwarded ones once more at home
        asyncio.run(wait_for_commits(settings, len(sends) + forwarded, timeout=120))
        time.sleep(1.0)
        committed = asyncio.run(committed_input_records(settings))
        assert all(w.proc is not None and w.proc.poll() is None for w in workers)
    finally:
        for worker in workers:
            worker.stop()

    changelog = asyncio.run(
        read_until_quiet(kafka_bootstrap, f"{settings.app_id}-accounts-changelog", parts)
    )
    where: dict[str, set[int]] = {}
    latest: dict[str, bytes] = {}
    for record in changelog:
        if record.key != FLUSH_MARK:
            where.setdefault(record.key.decode(), set()).add(record.partition)
            latest[record.key.decode()] = record.value
    assert where == {a: {home[a]} for a in accounts}  # one state per account, at home
    assert all(decode_state(latest[a]).total(Series.LOGINS, 90) == 30 for a in accounts)

    by_seq: dict[tuple[str, int], set[bytes]] = {}
    for out in _outputs(settings):
        body = orjson.dumps(out, option=orjson.OPT_SORT_KEYS)
        by_seq.setdefault((out["account_id"], out["seq"]), set()).add(body)
    assert all(len(bodies) == 1 for bodies in by_seq.values())  # no (account, seq) twice
    for account in accounts:
        seqs = sorted(s for a, s in by_seq if a == account)
        assert seqs == list(range(1, len(seqs) + 1))
    assert committed == len(sends) + forwarded
