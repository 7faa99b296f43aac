"""Crashes and failover through the real Kafka protocol: state and outputs against replay.

A worker killed with SIGKILL at random moments, twice, and stopped once with SIGTERM,
ends with every account's state equal to ``healthstream replay`` over the same events,
and the output topic holds every output replay gives (some perhaps twice, never one
missing). Two workers in one group: one is killed, the other takes its partitions over
with their state from the changelog. Three workers on eight partitions, a fourth joining
and one of the first three killed within seconds of the join: every commit reaches the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_io import fresh_settings, read_until_quiet, records_in_kafka

from healthstream.dev.offsets import committed_input_records, wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.book import AccountBook
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.app import FLUSH_MARK
from stream.settings import Settings
from windows.snapshot import decode_state, encode_state

pytestmark = pytest.mark.integration


def _records(accounts: int, days: int, seed: int) -> list[dict[str, Any]]:
    """A synthetic stream in which every 40th event is sent twice, as a retrying producer does."""
    out: list[dict[str, Any]] = []
    for n, record in enumerate(generate(Scenario(accounts=accounts, days=days, seed=seed))):
        out.append(record)
        if record["type"] != "tick" and n % 40 == 0:
            out.append(dict(record))
    return out


def _expected(records: list[dict[str, Any]], settings: Settings) -> tuple[AccountBook, list[bytes]]:
    sink = MemorySink()
    engine = HealthEngine(ScoringConfig(load_profile(), settings.min_step))
    lines = [orjson.dumps(r) for r in records]
    book, _ = replay(lines, engine, sink)
    return book, sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in sink.events)


def _final_states(settings: Settings) -> dict[str, bytes]:
    """The latest snapshot of every account in the changelog, as the worker left it."""
    changelog = f"{settings.app_id}-accounts-changelog"
    latest: dict[str, bytes] = {}
    for record in asyncio.run(
        read_until_quiet(settings.bootstrap_servers, changelog, settings.partitions)
    ):
        if record.key != FLUSH_MARK:
            latest[record.key.decode()] = record.value
    return latest


def _comparable(blob: bytes) -> bytes:
    """A snapshot without its input log position, which replay (no log) does not have."""
    state = decode_state(blob)
    state.log_partition = state.log_offset = -1
    return encode_state(state)


def _seed() -> int:
    """The run's random seed; ``CRASH_TEST_SEED`` repeats a run that failed."""
    given = os.environ.get("CRASH_TEST_SEED")
    return int(given) if given else random.randrange(1_000_000)


def _check_against_replay(
    settings: Settings, book: AccountBook, want: list[bytes], run: str = "the run"
) -> None:
    """Every account's last snapshot equals replay's state, and the outputs are replay's;
    ``run`` says which run failed (its seed, its kill moment)."""
    states = _final_states(settings)
    assert set(states) == set(book.states)
    mismatched = [
        account
        for account, blob in states.items()
        if _comparable(blob) != encode_state(book.state(account))
    ]
    assert not mismatched, (
        f"{run}: {len(mismatched)} accounts differ from replay, e.g. {mismatched[:3]}"
    )
    outputs = asyncio.run(
        read_until_quiet(settings.bootstrap_servers, settings.output_topic, settings.partitions)
    )
    got = [orjson.dumps(orjson.loads(r.value), option=orjson.OPT_SORT_KEYS) for r in outputs]
    # at least once, and a repeat is the same output again: same account, seq and content
    assert set(got) == set(want), f"{run}: outputs differ from replay"
    by_seq: dict[tuple[str, int], bytes] = {}
    for raw in got:
        out = orjson.loads(raw)
        assert by_seq.setdefault((out["account_id"], out["seq"]), raw) == raw


def _wait_for_progress(settings: Settings, at_least: int, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if asyncio.run(committed_input_records(settings)) >= at_least:
            return
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        time.sleep(0.3)
    raise AssertionError(f"no progress to {at_least} committed records:\n{worker.log_tail()}")


def test_sigkill_twice_and_sigterm_lose_nothing_and_count_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    settings = fresh_settings(kafka_bootstrap, "crash")
    records = _records(accounts=150, days=45, seed=seed % 97)
    total = records_in_kafka(records, settings.partitions)
    assert total > 20_000
    book, want = _expected(records, settings)
    resent = sum(1 for a, b in zip(records, records[1:], strict=False) if a == b)
    assert resent > 400
    asyncio.run(produce_records(settings, records))

    for round_, (share, how) in enumerate(
        [(0.15, signal.SIGKILL), (0.45, signal.SIGKILL), (0.7, signal.SIGTERM)]
    ):
        worker = WorkerProcess(settings, tmp_path / f"run-{round_}")
        with worker:
            _wait_for_progress(settings, int(total * share), worker)
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment past that point
            worker.stop(how)
        if how is signal.SIGKILL:
            assert worker.proc is not None and worker.proc.returncode == -signal.SIGKILL
    last = WorkerProcess(settings, tmp_path / "run-last")
    with last:
        assert asyncio.run(wait_for_commits(settings, total, timeout=240)), last.log_tail()
        time.sleep(1.0)  # the final flush's writes are acknowledged before the commit
    _check_against_replay(settings, book, want, f"seed {seed}")


def _assignments(worker: WorkerProcess) -> list[list[int]]:
    """The input partitions the worker announced, assignment after assignment."""
    found = re.findall(r"scoring input partitions \[([\d, ]*)\]", worker.log_path.read_text())
    return [[int(p) for p in group.split(",") if p.strip()] for group in found]


def test_a_second_worker_takes_over_a_killed_workers_partitions(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "crash")
    records = _records(accounts=80, days=40, seed=11)
    half = len(records) // 2
    total = records_in_kafka(records, settings.partitions)
    book, want = _expected(records, settings)
    asyncio.run(produce_records(settings, records[:half]))
    first = WorkerProcess(settings, tmp_path / "first").start()
    second = WorkerProcess(settings, tmp_path / "second").start()
    try:
        assert asyncio.run(
            wait_for_commits(settings, records_in_kafka(records[:half], 4), timeout=180)
        ), first.log_tail() + second.log_tail()
        owned = {w: _assignments(w) for w in (first, second)}
        assert owned[first] and owned[first][-1], first.log_tail()
        assert owned[second] and owned[second][-1], second.log_tail()  # both held a share
        first.stop(signal.SIGKILL)
        asyncio.run(produce_records(settings, records[half:]))
        assert asyncio.run(wait_for_commits(settings, total, timeout=240)), second.log_tail()
        time.sleep(1.0)
        assert second.proc is not None and second.proc.poll() is None
        assert _assignments(second)[-1] == [0, 1, 2, 3], second.log_tail()  # all of them now
    finally:
        first.stop(signal.SIGKILL)
        second.stop()
    _check_against_replay(settings, book, want)


def _committed_by_partition(settings: Settings) -> dict[int, int]:
    async def read() -> dict[int, int]:
        probe = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.app_id,
            enable_auto_commit=False,
        )
        await probe.start()
        try:
            tps = [TopicPartition(settings.input_topic, p) for p in range(settings.partitions)]
            return {tp.partition: (await probe.committed(tp)) or 0 for tp in tps}
        finally:
            await probe.stop()

    return asyncio.run(read())


def _feed(settings: Settings, records: list[dict[str, Any]], steps: int, pause_s: float) -> None:
    """Produce ``records`` in ``steps`` parts, ``pause_s`` apart: a stream still arriving."""
    size = -(-len(records) // steps)
    for start in range(0, len(records), size):
        asyncio.run(produce_records(settings, records[start : start + size]))
        time.sleep(pause_s)


def test_a_worker_killed_just_after_a_fourth_joins_leaves_no_commit_behind(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Three workers on eight partitions, a fourth joins mid-stream and one of the first
    three is killed within seconds of the join: every partition's commit reaches its end,
    and every account ends equal to replay."""
    seed = _seed()
    kill_after = random.Random(seed).uniform(0.5, 8.0)
    settings = fresh_settings(kafka_bootstrap, "crash", partitions=8)
    records = _records(accounts=300, days=60, seed=seed % 89)
    run = f"seed {seed}, killed {kill_after:.1f} s after the join"
    total = records_in_kafka(records, settings.partitions)
    book, want = _expected(records, settings)
    feeder = threading.Thread(target=_feed, args=(settings, records, 30, 0.5))
    feeder.start()
    workers = [WorkerProcess(settings, tmp_path / name).start() for name in ("w1", "w2", "w3")]
    fourth = WorkerProcess(settings, tmp_path / "w4")
    survivors = [*workers[1:], fourth]
    try:
        _wait_for_progress(settings, total // 5, workers[0])
        fourth.start()
        time.sleep(kill_after)
        workers[0].stop(signal.SIGKILL)
        feeder.join()
        done = asyncio.run(wait_for_commits(settings, total, timeout=240))
        assert done, f"{run}: commits stopped at {_committed_by_partition(settings)}\n" + "".join(
            w.log_tail() for w in survivors
        )
        time.sleep(1.0)  # the final flush's writes are acknowledged before the commit
        assert _assignments(fourth), fourth.log_tail()
        final = [_assignments(w)[-1] for w in survivors]
        assert sorted(p for owned in final for p in owned) == list(range(8)), final
    finally:
        feeder.join()
        for worker in [*workers, fourth]:
            worker.stop(signal.SIGKILL if worker is workers[0] else signal.SIGTERM)
    _check_against_replay(settings, book, want, run)
