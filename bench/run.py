"""``make bench``: one run, one broker, one workload; ratios measured side by side.

(a) the limit: a plain aiokafka consume + orjson decode loop over the workload topic;
(b) the worker end to end: consumed → windows → score → changelog and outputs acknowledged;
(c) ``replay``: the core alone over the same records.
Then latency at a fixed moderate rate, peak memory, state size and recovery time. Then
the steady-state workload, few accounts with long histories (``bench/steady.py``).
Figures go to stdout and to bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from healthstream.dev.broker import EmbeddedBroker
from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import TelemetryProducer
from healthstream.tools.replay import replay
from sinks import MemorySink
from stream import kafka
from stream.app import FLUSH_MARK
from stream.runtime import tune_gc
from stream.settings import Settings, build_engine
from stream.topics import create_worker_topics
from windows.snapshot import encode_state

HERE = Path(__file__).parent
PARTITIONS = 4


def say(text: str) -> None:
    print(text, flush=True)


def cached_workload(path: Path, scenario: Scenario, what: str) -> list[bytes]:
    """The scenario's records as JSON lines, generated once into ``path``."""
    if not path.exists():
        say(f"  generating {what} ...")
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as f:
            for record in generate(scenario):
                f.write(orjson.dumps(record) + b"\n")
        tmp.rename(path)
    return path.read_bytes().splitlines()


def workload(accounts: int, days: int) -> list[bytes]:
    return cached_workload(
        HERE / f"workload-{accounts}-{days}.jsonl",
        Scenario(accounts=accounts, days=days),
        f"{accounts:,} accounts x {days} days",
    )


def is_tick(line: bytes) -> bool:
    return line.startswith(b'{"type":"tick"')


def kafka_records(lines: list[bytes]) -> int:
    """The Kafka records ``produce`` makes of ``lines``: a tick goes to every partition."""
    return len(lines) + sum(1 for line in lines if is_tick(line)) * (PARTITIONS - 1)


def settings_for(bootstrap: str, run: str, input_topic: str, store: str) -> Settings:
    return Settings(
        store=store,
        bootstrap_servers=bootstrap,
        app_id=f"bench-{run}",
        input_topic=input_topic,
        output_topic=f"bench-out-{run}",
        dead_letter_topic=f"bench-dead-{run}",
        partitions=PARTITIONS,
    )


async def produce(settings: Settings, lines: list[bytes]) -> int:
    """Produce the records; returns how many Kafka records that made (ticks fan out)."""
    async with TelemetryProducer(settings) as producer:
        for line in lines:
            await producer.send(orjson.loads(line))
    return kafka_records(lines)


@asynccontextmanager
async def reading_from_start(
    settings: Settings, topic: str, partitions: int
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A group-less consumer assigned to every partition of ``topic``, at the beginning."""
    consumer = kafka.consumer(settings, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def raw_loop(settings: Settings, topic: str, expect: int) -> float:
    """The limit: consume every record of ``topic`` and decode it with orjson."""
    async with reading_from_start(settings, topic, PARTITIONS) as (consumer, _):
        n = 0
        started = time.perf_counter()
        while n < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                n += len(records)
        return n / (time.perf_counter() - started)


async def topic_records(settings: Settings, topic: str, partitions: int) -> list[Any]:
    async with reading_from_start(settings, topic, partitions) as (consumer, tps):
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        idle = 0
        while idle < 3:
            batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
            if not batches:
                positions = [await consumer.position(tp) for tp in tps]
                caught_up = all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True))
                idle = idle + 1 if caught_up else 0
            for records in batches.values():
                out.extend(records)
        return out


async def produce_changelog(
    settings: Settings, topic: str, snapshots: dict[tuple[int, bytes], bytes]
) -> None:
    """Write one snapshot per account, each to its partition, then each partition's mark."""
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=key, partition=partition)
            for (partition, key), value in snapshots.items()
        ]
        await asyncio.gather(*pending)
        for partition in sorted({p for p, _ in snapshots}):
            await producer.send_and_wait(topic, None, key=FLUSH_MARK, partition=partition)
    finally:
        await producer.stop()


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's peak resident memory (``VmRSS``: its resident memory now), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def log_time(log: str, marker: str) -> float | None:
    for line in log.splitlines():
        if marker in line:
            m = _LOG_TIME.match(line)
            if m:
                return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def wait_for_log(worker: WorkerProcess, marker: str, timeout: float) -> float:
    """The time the worker logged ``marker`` at, waited for."""
    found = log_time(worker.wait_for_log(marker, timeout), marker)
    if found is None:
        raise RuntimeError(f"the worker logged {marker!r} with no time:\n{worker.log_tail()}")
    return found


def time_worker(
    settings: Settings, records: int, workdir: Path
) -> tuple[float, float, list[Any], list[Any]]:
    """A worker over the input topic from its start: its records/s end to end, its peak
    RSS (MB), and the changelog and output records it wrote."""
    worker = WorkerProcess(settings, workdir)
    worker.start()
    try:
        if not asyncio.run(wait_for_commits(settings, records, timeout=1800)):
            raise RuntimeError(f"the worker did not commit {records:,} records in time")
        assert worker.proc is not None
        peak = peak_rss_mb(worker.proc.pid)
    finally:
        worker.stop()
    changelog = asyncio.run(
        topic_records(settings, f"{settings.app_id}-accounts-changelog", PARTITIONS)
    )
    outputs = asyncio.run(topic_records(settings, settings.output_topic, PARTITIONS))
    # from the first write to the last acknowledged one; the first batch is processed
    # before the first write, so it is left out of the count as well (conservative)
    stamps = [r.timestamp for r in changelog] + [r.timestamp for r in outputs]
    span = (max(stamps) - min(stamps)) / 1000
    return (records - settings.batch_max) / span, peak, changelog, outputs


def bounded_live_run(
    base: Settings, args: argparse.Namespace, records: int, workdir: Path
) -> dict[str, Any]:
    """The cold workload again, read by a new group whose worker keeps at most
    ``max_live_accounts`` accounts live and the others as their snapshot bytes: its rate,
    memory and outputs."""
    run = uuid.uuid4().hex[:6]
    settings = replace(
        settings_for(base.bootstrap_servers, run, base.input_topic, args.store),
        max_live_accounts=args.max_live_accounts,
        # the accounts touched since the last flush are live too: a flush at the same
        # number keeps the live set within twice the bound
        flush_max_accounts=args.max_live_accounts,
    )
    rate, peak, changelog, outputs = time_worker(settings, records, workdir)
    say(
        f"  (b') worker keeping {args.max_live_accounts:,} accounts live: {rate:,.0f} "
        f"records/s, peak RSS {peak:.0f} MB ({len(outputs):,} score changes)"
    )
    return {
        "max_live_accounts": args.max_live_accounts,
        "worker_events_per_s": rate,
        "peak_rss_mb": peak,
        "score_changes": len(outputs),
        "flush_max_accounts": settings.flush_max_accounts,
    }


def time_recovery(settings: Settings, workdir: Path) -> tuple[float, float, float]:
    """Start a worker on a filled changelog: seconds from its recovery starting to ready,
    and from its process starting to ready; and its resident memory (MB) once ready, when
    it holds every account as the snapshot it recovered."""
    worker = WorkerProcess(settings, workdir)
    started = time.time()
    worker.start()
    try:
        ready = wait_for_log(worker, "Worker ready", timeout=600)
        begun = log_time(worker.log_path.read_text(), "Recovery]: Starting") or started
        assert worker.proc is not None
        resident = peak_rss_mb(worker.proc.pid, "VmRSS")
    finally:
        worker.stop()
    return ready - begun, ready - started, resident


async def paced_latency(settings: Settings, rate: int, seconds: float) -> list[float]:
    """Produce at ``rate`` events/s; latency of each score change from its event's append."""
    lines = [line for line in workload_small() if not is_tick(line)][: int(rate * seconds)]
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        started = time.perf_counter()
        step = 100
        for i in range(0, len(lines), step):
            for line in lines[i : i + step]:
                key = orjson.loads(line)["account_id"].encode()
                await producer.send(settings.input_topic, line, key=key)
            delay = started + (i + step) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()
    await asyncio.sleep(2)
    outputs = await topic_records(settings, settings.output_topic, PARTITIONS)
    latencies = []
    for record in outputs:
        source = dict(record.headers).get("source_timestamp_ms")
        if source:
            latencies.append(record.timestamp - int(source))
    return latencies


def latency_at(
    bootstrap: str, store: str, rate: int, workdir: Path
) -> tuple[float, float, int, float]:
    """A fresh worker fed at ``rate`` events/s for 10 s: p50 and p99 latency (ms), how
    many score changes they are taken over, and the worker's resident memory (MB) when
    ready, before any record: what an empty worker holds."""
    run = uuid.uuid4().hex[:6]
    settings = settings_for(bootstrap, run, f"bench-lat-{run}", store)
    asyncio.run(create_worker_topics(settings))
    worker = WorkerProcess(settings, workdir)
    worker.start()
    try:
        wait_for_log(worker, "Worker ready", timeout=120)
        time.sleep(1)
        assert worker.proc is not None
        empty_mb = peak_rss_mb(worker.proc.pid, "VmRSS")
        latencies = sorted(asyncio.run(paced_latency(settings, rate, 10)))
    finally:
        worker.stop()
    if not latencies:
        raise RuntimeError(f"no score change came out of the latency run at {rate:,}/s")
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    return p50, p99, len(latencies), empty_mb


def note_empty_worker(results: dict[str, Any], empty_mb: float, accounts: int) -> None:
    """An empty worker's memory, and the cold run's peak above it per account."""
    results["worker_empty_rss_mb"] = empty_mb
    above = (results["peak_rss_mb"] - empty_mb) * 1024 * 1024 / accounts
    results["peak_rss_bytes_per_account_above_empty"] = above
    say(
        f"  an empty worker: {empty_mb:.0f} MB resident; the cold run's peak above it: "
        f"{above / 1024:.1f} KB per account"
    )
    held = (results["recovered_rss_mb"] - empty_mb) * 1024 * 1024 / accounts
    results["recovered_bytes_per_account_above_empty"] = held
    say(
        f"  a worker holding every account as its recovered snapshot: "
        f"{results['recovered_rss_mb']:.0f} MB, {held / 1024:.1f} KB per account above empty"
    )
    bounded = results.get("bounded_live")
    if bounded is not None:
        bounded["peak_rss_bytes_per_account_above_empty"] = (
            (bounded["peak_rss_mb"] - empty_mb) * 1024 * 1024 / accounts
        )
        say(
            f"  with {bounded['max_live_accounts']:,} accounts live: "
            f"{bounded['peak_rss_bytes_per_account_above_empty'] / 1024:.1f} KB per account"
        )


def workload_small() -> list[bytes]:
    return workload(5_000, 30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rate", type=int, default=5_000, help="events/s for the latency run")
    parser.add_argument(
        "--floor-rate",
        type=int,
        default=1_000,
        help="events/s of a second latency run, well below the worker's capacity: the "
        "latency of the path itself, without a queue (0: skip)",
    )
    parser.add_argument("--store", default="memory://", help="memory:// or rocksdb://")
    parser.add_argument(
        "--max-live-accounts",
        type=int,
        default=20_000,
        help="a second cold worker run keeping this many accounts live, the others as "
        "snapshot bytes (0: skip)",
    )
    parser.add_argument("--steady-accounts", type=int, default=500)
    parser.add_argument("--steady-days", type=int, default=90)
    parser.add_argument(
        "--steady-intensity",
        type=float,
        default=10.0,
        help="the generator's activity multiplier (10: about 42 events per account-day)",
    )
    parser.add_argument("--skip-cold", action="store_true", help="run the steady stage only")
    parser.add_argument("--skip-steady", action="store_true", help="run the cold stage only")
    args = parser.parse_args()
    if args.skip_cold and args.skip_steady:
        parser.error("--skip-cold and --skip-steady: nothing left to run")
    import steady  # here, not at the top: it imports this module

    if args.skip_cold:
        return steady.run_steady(args)
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        say(f"healthstream bench: broker {bootstrap}, {PARTITIONS} partitions, {args.store}")
        results["store"] = args.store
        lines = workload(args.accounts, args.days)
        events = sum(1 for line in lines if not is_tick(line))
        say(f"  workload: {events:,} events, {args.accounts:,} accounts")
        run = uuid.uuid4().hex[:6]
        topic = f"bench-in-{run}"
        base = settings_for(bootstrap, run, topic, args.store)
        asyncio.run(create_worker_topics(base))
        t = time.perf_counter()
        records = asyncio.run(produce(base, lines))
        say(f"  produced {records:,} records in {time.perf_counter() - t:.1f} s")

        raw = [asyncio.run(raw_loop(base, topic, records)) for _ in range(3)]
        results["raw_events_per_s"] = statistics.median(raw)
        say(
            f"  (a) raw aiokafka + orjson loop: {results['raw_events_per_s']:,.0f} records/s "
            f"(median of {', '.join(f'{r:,.0f}' for r in raw)})"
        )

        sink = MemorySink()
        tune_gc()  # as `healthstream replay` runs
        t = time.perf_counter()
        book, _ = replay(lines, build_engine(base), sink)
        replay_s = time.perf_counter() - t
        results["replay_score_changes"] = len(sink.events)
        results["replay_events_per_s"] = len(lines) / replay_s
        sizes = [len(encode_state(book.state(a))) for a in book.states]
        results["state_bytes_per_account"] = statistics.mean(sizes)
        results["state_bytes_per_account_max"] = max(sizes)
        say(
            f"  (c) replay, the core alone: {results['replay_events_per_s']:,.0f} records/s; "
            f"state {results['state_bytes_per_account']:.0f} B/account mean, "
            f"{results['state_bytes_per_account_max']} max"
        )
        del book, sink

        workdir = Path(tempfile.mkdtemp(prefix="healthstream-bench-"))
        rate, peak, changelog, outputs = time_worker(base, records, workdir / "w1")
        results["worker_events_per_s"], results["peak_rss_mb"] = rate, peak
        results["worker_score_changes"] = len(outputs)
        say(
            f"  (b) worker end to end: {rate:,.0f} records/s ({records:,} records; "
            f"{len(changelog):,} changelog writes, {len(outputs):,} score changes); "
            f"peak RSS {results['peak_rss_mb']:.0f} MB"
        )
        if args.max_live_accounts:
            results["bounded_live"] = bounded_live_run(base, args, records, workdir / "w1b")

        recovery_s, to_ready_s, _ = time_recovery(base, workdir / "w2")
        results["recovery_s_100k_accounts"] = recovery_s
        results["restart_to_ready_s"] = to_ready_s
        say(
            f"  recovery of {args.accounts:,} accounts from the changelog: "
            f"{results['recovery_s_100k_accounts']:.1f} s "
            f"({results['restart_to_ready_s']:.1f} s from process start to ready)"
        )

        # A real cluster compacts the changelog to about one snapshot per account; Tansu
        # keeps every write. The same recovery over what compaction would leave:
        compact_run = uuid.uuid4().hex[:6]
        compact = settings_for(bootstrap, compact_run, f"bench-cin-{compact_run}", args.store)
        asyncio.run(create_worker_topics(compact))
        latest = {(r.partition, r.key): r.value for r in changelog if r.value is not None}
        asyncio.run(produce_changelog(compact, f"{compact.app_id}-accounts-changelog", latest))
        results["recovery_s_100k_accounts_compacted"], _, recovered_mb = time_recovery(
            compact, workdir / "w2c"
        )
        results["recovered_rss_mb"] = recovered_mb
        results["recovery_compacted_records"] = len(latest)
        say(
            f"  recovery from a compacted changelog ({len(latest):,} snapshots, one per "
            f"account): {results['recovery_s_100k_accounts_compacted']:.1f} s"
        )

        for rate in [args.rate] + ([args.floor_rate] if args.floor_rate else []):
            p50, p99, count, empty_mb = latency_at(
                bootstrap, args.store, rate, workdir / f"lat-{rate}"
            )
            if rate == args.rate:
                results["latency_p50_ms"], results["latency_p99_ms"] = p50, p99
                note_empty_worker(results, empty_mb, args.accounts)
            else:
                results["latency_floor"] = {"rate": rate, "p50_ms": p50, "p99_ms": p99}
            say(
                f"  latency at {rate:,} events/s, append to score_changed append: "
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({count:,} score changes)"
            )
        shutil.rmtree(workdir, ignore_errors=True)

    results["worker_to_raw"] = results["worker_events_per_s"] / results["raw_events_per_s"]
    results["worker_and_replay_score_changes_equal"] = (
        results["replay_score_changes"] == results["worker_score_changes"]
    )
    if "bounded_live" in results:
        results["bounded_live"]["score_changes_equal"] = (
            results["bounded_live"]["score_changes"] == results["replay_score_changes"]
        )
    results["replay_to_raw"] = results["replay_events_per_s"] / results["raw_events_per_s"]
    say(
        f"  ratios: worker/raw {results['worker_to_raw']:.3f}, "
        f"replay/raw {results['replay_to_raw']:.3f}"
    )
    results.update(steady.previous_steady())  # until the steady stage replaces them
    (HERE / "results.json").write_text(
        orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n"
    )
    say(f"  written to {HERE / 'results.json'}")
    return 0 if args.skip_steady else steady.run_steady(args)


if __name__ == "__main__":
    sys.exit(main())
