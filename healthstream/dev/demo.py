"""``healthstream demo``: embedded broker, one worker, a synthetic scenario, a zone report."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from healthstream.dev.broker import EmbeddedBroker
from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate, trajectory_of
from healthstream.produce import TelemetryProducer
from stream import kafka
from stream.settings import Settings
from stream.topics import create_worker_topics

SPARK = "▁▂▃▄▅▆▇█"
ZONE_ORDER = ("critical", "at_risk", "healthy", "onboarding")


@dataclass
class ScoreBoard:
    """What the output topic has said about each account so far."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    received: int = 0
    #: alerts and override starts by name, e.g. "alert regime_change"
    notices: Counter[str] = field(default_factory=Counter)

    def add(self, out: dict[str, Any]) -> None:
        kind = out["kind"]
        if kind == "alert":
            self.notices[f"alert {out['alert']}"] += 1
            return
        if kind == "override_applied":
            self.notices[f"override {out['override']}"] += 1
            return
        if kind != "score_changed":
            return
        self.received += 1
        account = out["account_id"]
        self.latest[account] = out
        self.history[account].append(out["score"])

    def zones(self) -> Counter[str]:
        return Counter(o["zone"] for o in self.latest.values())


def sparkline(scores: list[int], width: int = 16) -> str:
    if len(scores) > width:
        step = len(scores) / width
        scores = [scores[int(i * step)] for i in range(width - 1)] + [scores[-1]]
    return "".join(SPARK[min(len(SPARK) - 1, s * len(SPARK) // 101)] for s in scores)


def _describe_change(out: dict[str, Any]) -> str:
    """Why the score is what it is: overrides and findings first, then the signals that moved."""
    parts = [o["override"] for o in out.get("overrides", []) if o["override"] != "detector_cap"]
    parts += [
        f"{f['detector']}({f['series']})" if f["series"] else f["detector"]
        for f in out.get("detectors", [])
        if f["severity"] != "monitor"
    ]
    if not parts:
        moved = out.get("signals") or []
        parts = [f"{m['signal']} {m['delta']:+d}" for m in moved[:2]]
    return ", ".join(parts[:3]) if parts else "first score"


def render_report(board: ScoreBoard, scenario: Scenario, per_zone: int = 6) -> str:
    lines = []
    zones = board.zones()
    total = sum(zones.values())
    lines.append("")
    lines.append(f"Accounts by zone ({total} scored, {board.received:,} score changes emitted)")
    for zone in ZONE_ORDER:
        lines.append(f"  {zone:<9} {zones.get(zone, 0):>5}")
    header = (
        f"  {'account':<12} {'score':>5} {'prev':>5}  {'trend':<16}  {'behaviour':<13} "
        f"{'as of':<10}  why"
    )
    for zone in ZONE_ORDER:
        members = [o for o in board.latest.values() if o["zone"] == zone]
        if not members:
            continue
        members.sort(key=lambda o: (o["score"], o["account_id"]))
        lines.append("")
        lines.append(f"{zone.upper()} ({len(members)}), lowest scores first:")
        lines.append(header)
        for out in members[:per_zone]:
            account = out["account_id"]
            prev = "-" if out["previous_score"] is None else str(out["previous_score"])
            lines.append(
                f"  {account:<12} {out['score']:>5} {prev:>5}  "
                f"{sparkline(board.history[account]):<16}  "
                f"{trajectory_of(scenario, account).value:<13} {out['as_of']:<10}  "
                f"{_describe_change(out)}"
            )
    behaviour_by_zone: dict[str, Counter[str]] = defaultdict(Counter)
    for out in board.latest.values():
        behaviour_by_zone[trajectory_of(scenario, out["account_id"]).value][out["zone"]] += 1
    if board.notices:
        lines.append("")
        lines.append("Alerts and overrides emitted:")
        for notice, count in sorted(board.notices.items()):
            lines.append(f"  {notice:<32} {count:>6}")
    lines.append("")
    lines.append("Final zone by simulated behaviour:")
    # each column as wide as its zone's name, and two spaces between columns
    lines.append(f"  {'behaviour':<14}" + "".join(f"  {z}" for z in ZONE_ORDER))
    for behaviour in sorted(behaviour_by_zone):
        counts = behaviour_by_zone[behaviour]
        lines.append(
            f"  {behaviour:<14}" + "".join(f"  {counts.get(z, 0):>{len(z)}}" for z in ZONE_ORDER)
        )
    return "\n".join(lines)


async def _consume_outputs(settings: Settings, board: ScoreBoard, stop: asyncio.Event) -> None:
    consumer = kafka.consumer(settings, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.output_topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    board.add(orjson.loads(record.value))
            if stop.is_set() and not batches:
                ends = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return
    finally:
        await consumer.stop()


async def _stream(
    settings: Settings, scenario: Scenario, seconds: float
) -> tuple[ScoreBoard, bool]:
    """What the output topic said, and whether the worker caught up with the input."""
    board = ScoreBoard()
    stop = asyncio.Event()
    watcher = asyncio.create_task(_consume_outputs(settings, board, stop))
    per_day = seconds / scenario.days
    day = 0
    events = 0
    started = time.monotonic()
    async with TelemetryProducer(settings) as producer:
        for record in generate(scenario):
            if record["type"] == "tick":
                day += 1
                await producer.flush()
                # pace event time: one simulated day every ``per_day`` seconds
                delay = started + day * per_day - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if day % 10 == 0:
                    zones = board.zones()
                    print(
                        f"  day {day:>3}/{scenario.days}  {events:>8,} events  "
                        f"{board.received:>6,} score changes  "
                        + "  ".join(f"{z} {zones.get(z, 0):>3}" for z in ZONE_ORDER),
                        flush=True,
                    )
            else:
                events += 1
            await producer.send(record)
    print(
        f"  streamed {events:,} events in {time.monotonic() - started:.0f} s; "
        "waiting for the worker to catch up...",
        flush=True,
    )
    caught_up = await wait_for_commits(settings, producer.records, timeout=120)
    stop.set()
    await watcher
    return board, caught_up


def run_demo(accounts: int = 300, days: int = 120, seconds: float = 45.0, seed: int = 7) -> int:
    scenario = Scenario(accounts=accounts, days=days, seed=seed)
    workdir = Path(tempfile.mkdtemp(prefix="healthstream-demo-"))
    print(f"healthstream demo: {accounts} accounts, {days} days of telemetry in ~{seconds:.0f} s")
    with EmbeddedBroker() as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap, app_id="healthstream-demo")
        print(f"  embedded broker at {broker.bootstrap}; worker log: {workdir / 'worker.log'}")
        asyncio.run(create_worker_topics(settings))
        with WorkerProcess(settings, workdir) as worker:
            board, caught_up = asyncio.run(_stream(settings, scenario, seconds))
    if not caught_up:
        print(
            "healthstream: the worker did not catch up with the input within 120 s; "
            f"its log: {worker.log_path}",
            file=sys.stderr,
        )
        return 1
    print(render_report(board, scenario))
    return 0 if board.received else 1
