"""The steady-state workload of ``make bench``: few accounts, long histories, many events.

The cold workload (``bench/run.py``) makes every account new: state creation, a first
score and an output for most events. Here 500 accounts send about 42 events a day each
for 90 days (``Scenario(intensity=10)``), with a tick a day, so that after the first month
every account has a history, the model works on warm state and few events emit. Over the
same records, in one run:

(a) the raw aiokafka + orjson loop (median of 3);
(b) the worker end to end, its rate taken from its group's committed offsets over the
    records after day 30 (``STEADY_FROM_DAY``), its peak memory, its outputs;
(c) ``replay``, the core alone, over every record and over those after day 30;
(d) a plain Faust app (``bench/faust_peer.py``): one agent and one table of daily
    buckets per account, measured as the worker is.

Its figures go to ``results["steady"]`` in bench/results.json, beside the cold ones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import TopicPartition
from run import (
    HERE,
    PARTITIONS,
    cached_workload,
    is_tick,
    kafka_records,
    peak_rss_mb,
    produce,
    raw_loop,
    say,
    settings_for,
    topic_records,
)

from healthstream.dev.broker import EmbeddedBroker
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario
from healthstream.tools.replay import replay
from sinks import MemorySink
from stream import kafka
from stream.runtime import tune_gc
from stream.settings import Settings, build_engine
from stream.topics import create_worker_topics
from windows.telemetry import MS_PER_DAY

#: the steady figures count the records from this day of the scenario on
STEADY_FROM_DAY = 30
#: the peer's table (its changelog: ``<app id>-<table>-changelog``)
PEER_TABLE = "buckets"
#: seconds between two reads of a group's committed offsets
POLL_S = 0.5
RESULTS = HERE / "results.json"


def steady_workload(scenario: Scenario) -> list[bytes]:
    """The scenario's records, cached in bench/ like the cold workload."""
    name = f"steady-{scenario.accounts}-{scenario.days}-{scenario.intensity:g}.jsonl"
    what = (
        f"{scenario.accounts:,} accounts x {scenario.days} days, intensity {scenario.intensity:g}"
    )
    return cached_workload(HERE / name, scenario, what)


def first_line_from(lines: list[bytes], ts_ms: int) -> int:
    """The index of the first line whose ``ts`` is at or after ``ts_ms`` (len: none is)."""
    for index, line in enumerate(lines):
        if orjson.loads(line)["ts"] >= ts_ms:
            return index
    return len(lines)


@dataclass(frozen=True)
class Span:
    """Two readings of a group's committed total: where the steady part starts and ends."""

    start_s: float
    start_records: int
    end_s: float
    end_records: int

    @property
    def records(self) -> int:
        return self.end_records - self.start_records

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    @property
    def rate(self) -> float:
        return self.records / self.seconds


async def watch_commits(
    settings: Settings, start: int, end: int, alive: Callable[[], bool], timeout: float
) -> Span:
    """Read the group's committed total on the input topic every ``POLL_S``: the first
    reading at or past ``start`` records, and the first at or past ``end``."""
    probe = kafka.consumer(settings, group_id=settings.app_id, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(settings.input_topic, p) for p in range(settings.partitions)]
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = sum([(await probe.committed(tp)) or 0 for tp in tps])
            now = time.perf_counter()
            if first is None and committed >= start:
                first = (now, committed)
            if first is not None and committed >= end:
                return Span(first[0], first[1], now, committed)
            if not alive():
                raise RuntimeError(f"{settings.app_id} stopped at {committed:,} records")
            await asyncio.sleep(POLL_S)
        raise RuntimeError(f"{settings.app_id} did not commit {end:,} records in {timeout:g} s")
    finally:
        await probe.stop()


def measure_worker(
    settings: Settings, workdir: Path, start: int, end: int
) -> tuple[Span, float, int]:
    """A worker over the whole topic: its steady span, peak RSS (MB) and output count."""
    worker = WorkerProcess(settings, workdir)
    worker.start()
    try:
        proc = worker.proc
        assert proc is not None
        try:
            span = asyncio.run(
                watch_commits(settings, start, end, lambda: proc.poll() is None, 1800)
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{worker.log_tail()}") from None
        rss = peak_rss_mb(proc.pid)
    finally:
        worker.stop()
    outputs = asyncio.run(topic_records(settings, settings.output_topic, PARTITIONS))
    return span, rss, len(outputs)


def start_peer(settings: Settings, workdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``bench/faust_peer.py worker`` on the settings' broker, group and input topic."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BENCH_PEER_BOOTSTRAP": settings.bootstrap_servers,
        "BENCH_PEER_APP_ID": settings.app_id,
        "BENCH_PEER_TOPIC": settings.input_topic,
        "BENCH_PEER_TABLE": PEER_TABLE,
        "BENCH_PEER_PARTITIONS": str(settings.partitions),
        "BENCH_PEER_DATADIR": str(workdir / "data"),
    }
    command = [sys.executable, str(HERE / "faust_peer.py"), "worker", "--loglevel", "warn"]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_peer(settings: Settings, workdir: Path, start: int, end: int) -> tuple[Span, float]:
    """The Faust peer over the whole topic: its steady span and peak RSS (MB). Faust
    creates its table's changelog itself, compacted, as it starts."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "peer.log"
    with open(log_path, "ab") as log:
        proc = start_peer(settings, workdir, log)
        try:
            try:
                span = asyncio.run(
                    watch_commits(settings, start, end, lambda: proc.poll() is None, 1800)
                )
            except RuntimeError as exc:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
                raise RuntimeError(f"{exc}:\n{tail}") from None
            rss = peak_rss_mb(proc.pid)
        finally:
            stop(proc)
    return span, rss


def measure_replay(lines: list[bytes], settings: Settings, steady_from: int) -> dict[str, Any]:
    """``replay`` over every line, as ``healthstream replay`` runs it: records/s over all
    of them and over those from line ``steady_from`` on, and its output count."""
    sink = MemorySink()
    reached: list[tuple[int, float]] = []

    def progress(done: int) -> None:
        if not reached and done >= steady_from:
            reached.append((done, time.perf_counter()))

    tune_gc()
    started = time.perf_counter()
    replay(lines, build_engine(settings), sink, on_progress=progress)
    ended = time.perf_counter()
    found: dict[str, Any] = {
        "replay_events_per_s": len(lines) / (ended - started),
        "replay_outputs": len(sink.events),
    }
    if reached:
        done, at = reached[0]
        found["replay_events_per_s_after_day30"] = (len(lines) - done) / (ended - at)
    return found


def describe(scenario: Scenario, lines: list[bytes], steady_from: int) -> None:
    ticks = sum(1 for line in lines if is_tick(line))
    say(
        f"  steady workload: {len(lines) - ticks:,} events and {ticks} ticks, "
        f"{scenario.accounts:,} accounts x {scenario.days} days, intensity "
        f"{scenario.intensity:g}; day {STEADY_FROM_DAY} starts at line {steady_from:,}"
    )


def steady_stage(bootstrap: str, store: str, scenario: Scenario) -> dict[str, Any]:
    """The steady workload on the broker at ``bootstrap``: every figure of
    ``results["steady"]``."""
    lines = steady_workload(scenario)
    steady_from = first_line_from(lines, scenario.start_ms + STEADY_FROM_DAY * MS_PER_DAY)
    describe(scenario, lines, steady_from)
    start = kafka_records(lines[:steady_from])
    run = uuid.uuid4().hex[:6]
    base = settings_for(bootstrap, f"steady-{run}", f"bench-steady-in-{run}", store)
    asyncio.run(create_worker_topics(base))
    t = time.perf_counter()
    records = asyncio.run(produce(base, lines))
    say(f"  produced {records:,} records in {time.perf_counter() - t:.1f} s")
    found: dict[str, Any] = {"accounts": scenario.accounts, "records": records}

    raw = [asyncio.run(raw_loop(base, base.input_topic, records)) for _ in range(3)]
    found["raw_events_per_s"] = statistics.median(raw)
    say(
        f"  steady (a) raw aiokafka + orjson loop: {found['raw_events_per_s']:,.0f} "
        f"records/s (median of {', '.join(f'{r:,.0f}' for r in raw)})"
    )
    found.update(replay_figures(lines, base, steady_from))
    workdir = Path(tempfile.mkdtemp(prefix="healthstream-steady-"))
    try:
        found.update(worker_figures(base, workdir / "worker", start, records, found))
        peer = settings_for(bootstrap, f"steady-peer-{run}", base.input_topic, store)
        found.update(peer_figures(peer, workdir / "peer", start, records))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found["worker_to_raw"] = found["worker_events_per_s"] / found["raw_events_per_s"]
    found["worker_to_faust_agent"] = (
        found["worker_events_per_s"] / found["faust_agent_events_per_s"]
    )
    say(
        f"  steady ratios: worker/raw {found['worker_to_raw']:.3f}, "
        f"worker/faust agent {found['worker_to_faust_agent']:.2f}"
    )
    return found


def replay_figures(lines: list[bytes], base: Settings, steady_from: int) -> dict[str, Any]:
    found = measure_replay(lines, base, steady_from)
    found["output_share"] = found["replay_outputs"] / len(lines)
    after = found.get("replay_events_per_s_after_day30")
    say(
        f"  steady (c) replay, the core alone: {found['replay_events_per_s']:,.0f} records/s"
        + (f" ({after:,.0f} records/s after day {STEADY_FROM_DAY})" if after else "")
        + f"; {found['replay_outputs']:,} outputs, {found['output_share']:.1%} of the "
        f"records ({'within' if found['output_share'] <= 0.05 else 'above'} 5%)"
    )
    return found


def worker_figures(
    base: Settings, workdir: Path, start: int, records: int, found: dict[str, Any]
) -> dict[str, Any]:
    span, rss, outputs = measure_worker(base, workdir, start, records)
    equal = outputs == found["replay_outputs"]
    say(
        f"  steady (b) worker end to end, after day {STEADY_FROM_DAY}: {span.rate:,.0f} "
        f"records/s ({span.records:,} records committed in {span.seconds:.1f} s); "
        f"peak RSS {rss:.0f} MB; {outputs:,} outputs "
        f"({'the same as' if equal else 'not the same as'} replay's)"
    )
    return {
        "worker_events_per_s": span.rate,
        "worker_peak_rss_mb": rss,
        "worker_outputs": outputs,
        "outputs_equal": equal,
    }


def peer_figures(peer: Settings, workdir: Path, start: int, records: int) -> dict[str, Any]:
    span, rss = measure_peer(peer, workdir, start, records)
    say(
        f"  steady (d) Faust agent + table, after day {STEADY_FROM_DAY}: {span.rate:,.0f} "
        f"records/s ({span.records:,} records committed in {span.seconds:.1f} s); "
        f"peak RSS {rss:.0f} MB"
    )
    return {"faust_agent_events_per_s": span.rate, "faust_agent_peak_rss_mb": rss}


def scenario_of(args: argparse.Namespace) -> Scenario:
    return Scenario(
        accounts=args.steady_accounts, days=args.steady_days, intensity=args.steady_intensity
    )


def previous_steady() -> dict[str, Any]:
    """The steady figures bench/results.json holds, to keep when only the cold stage runs."""
    if not RESULTS.exists():
        return {}
    previous = orjson.loads(RESULTS.read_bytes())
    return {"steady": previous["steady"]} if "steady" in previous else {}


def run_steady(args: argparse.Namespace) -> int:
    """The steady stage on a broker of its own (or ``KAFKA_BOOTSTRAP_SERVERS``); its figures
    merged into bench/results.json, whatever else the file holds kept."""
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        say(f"healthstream steady bench: broker {bootstrap}, {PARTITIONS} partitions, {args.store}")
        steady = steady_stage(bootstrap, args.store, scenario_of(args))
    results = orjson.loads(RESULTS.read_bytes()) if RESULTS.exists() else {}
    results["steady"] = steady
    RESULTS.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    say(f"  written to {RESULTS}")
    return 0
