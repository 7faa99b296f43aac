"""The worker's Prometheus metrics: fed from real batches, read over HTTP, linted by promtool."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from faust.types import TP
from kafka_io import fresh_settings, produce_raw
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scenarios import as_lines, silent_account_stream

from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import JsonlFileSink, MemorySink, ScoreHistory, ThreadedSink
from stream.faust_internals import records_behind
from stream.metrics import (
    ACCOUNT_ZONES,
    OUTPUT_KINDS,
    MetricsServer,
    SinkCounts,
    WorkerMetrics,
    register_sinks,
)
from stream.scorer import BatchScorer, InputRecord, StrKeyedBytesStore

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), 5))


def samples_of(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def final_zones(outputs: list[dict]) -> Counter[str]:
    """How many accounts end in each zone, from their last score change."""
    last: dict[str, dict] = {}
    for out in outputs:
        if out["kind"] == "score_changed":
            last[out["account_id"]] = out
    return Counter(out["zone"] for out in last.values())


def test_batches_move_counters_by_type_reason_kind_and_zone() -> None:
    records = silent_account_stream(accounts=4, days=40)
    lines = as_lines(records)
    resent = lines[-1]  # the last event sent again, under a new offset: a duplicate
    bad = [b"not json at all", b'{"event_id":"x","account_id":"a","type":"warp","ts":1}']
    first = [InputRecord(0, i, line) for i, line in enumerate(lines[:300])]
    second = [InputRecord(0, i, line) for i, line in enumerate(lines[300:], start=300)]
    n = len(lines)
    second += [InputRecord(0, n + i, v) for i, v in enumerate([*bad, resent])]
    second.append(first[-1])  # an offset read again after a seek back

    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    metrics = WorkerMetrics()
    outputs = []
    for batch in (first, second):
        result = scorer.process(batch)
        metrics.observe_batch(scorer.counters, result, len(batch), 0.002, 0.01)
        outputs += [out for _, out, _ in result.outputs]
    got = samples_of(generate_latest(metrics.registry).decode())

    by_type = Counter(r["type"] for r in records)
    for event_type, count in by_type.items():
        assert value(got, "healthstream_events_total", type=event_type) == count
    assert value(got, "healthstream_events_total", type="email_replied") == 0
    assert value(got, "healthstream_dead_letters_total", reason="not_json") == 1
    assert value(got, "healthstream_dead_letters_total", reason="unknown_type") == 1
    assert value(got, "healthstream_dead_letters_total", reason="bad_ts") == 0
    assert value(got, "healthstream_duplicates_skipped_total") == 1
    assert value(got, "healthstream_records_reread_total") == 1
    kinds = Counter(out["kind"] for out in outputs)
    assert kinds["score_changed"] > 0
    for kind in OUTPUT_KINDS:
        assert value(got, "healthstream_outputs_total", kind=kind) == kinds[kind]
    zones = final_zones(outputs)
    assert sum(zones.values()) == 5  # four busy accounts and the silent one
    for zone in ACCOUNT_ZONES:
        assert value(got, "healthstream_accounts_by_zone", zone=zone) == zones[zone]
    # one observation per batch, of the mean per record
    assert value(got, "healthstream_event_processing_seconds_count") == 2
    assert value(got, "healthstream_event_processing_seconds_sum") == pytest.approx(
        0.002 / len(first) + 0.002 / len(second)
    )
    newest = max(r["ts"] for r in records) / 1000
    lag = value(got, "healthstream_event_time_lag_seconds")
    assert lag is not None and abs(lag - (time.time() - newest)) < 5


def test_sinks_feed_their_own_totals_through_registration(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    history = ScoreHistory(f"sqlite:///{tmp_path / 'history.db'}")
    sinks = [ThreadedSink(JsonlFileSink(tmp_path / "out.jsonl")), ThreadedSink(history)]
    register_sinks(metrics, sinks)
    expected = MemorySink()
    replay(as_lines(silent_account_stream(accounts=2, days=20)), engine(), expected)
    events = [e for _, e in expected.events]

    async def deliver() -> None:
        for sink in sinks:
            await sink.deliver_batch(events)
            await sink.deliver_batch(events[:3])  # the history keeps these once
            await sink.aclose()

    asyncio.run(deliver())
    got = samples_of(generate_latest(metrics.registry).decode())
    assert value(got, "healthstream_sink_deliveries_total", sink="file") == len(events) + 3
    assert value(got, "healthstream_sink_deliveries_total", sink="history") == len(events) + 3
    assert value(got, "healthstream_sink_failures_total", sink="file") == 0
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == len(events) + 3
    with pytest.raises(ValueError, match="'file': already registered"):
        metrics.register_sink("file", lambda: SinkCounts(0))


def test_the_live_accounts_and_the_snapshots_decoded_are_scraped() -> None:
    lines = as_lines(silent_account_stream(accounts=6, days=20))
    store = StrKeyedBytesStore({}, {}, max_live=2)
    scorer = BatchScorer(engine(), store)
    metrics = WorkerMetrics(
        accounts_live=store.live_count, snapshots_decoded=lambda: scorer.book.decoded
    )
    for start in range(0, len(lines), 40):  # a flush after every 40 records
        batch = [InputRecord(0, i, line) for i, line in enumerate(lines[start : start + 40], start)]
        for account, partition in scorer.process(batch).touched.items():
            store.persist(account, partition, scorer.snapshot(account))
        store.trim()
    got = samples_of(generate_latest(metrics.registry).decode())
    assert value(got, "healthstream_accounts_live") == 2
    decoded = value(got, "healthstream_account_snapshots_decoded_total")
    assert decoded is not None and decoded == scorer.book.decoded > 10
    unbounded = StrKeyedBytesStore({b"a": b"snapshot", b"b": scorer.book.state("acct-0")}, {})
    assert unbounded.live_count() == 1


def test_a_reading_that_fails_is_left_out_of_the_scrape_not_the_rest() -> None:
    def broken() -> dict[tuple[str, int], int]:
        raise RuntimeError("partition revoked while reading")

    metrics = WorkerMetrics(
        consumer_lag=broken, accounts_tracked=lambda: 7, recovery=lambda: (True, 42)
    )
    got = samples_of(generate_latest(metrics.registry).decode())
    assert not [k for k in got if k[0] == "healthstream_consumer_lag_records"]
    assert value(got, "healthstream_accounts_tracked") == 7
    assert value(got, "healthstream_table_recovery_active") == 1
    assert value(got, "healthstream_table_recovery_remaining_records") == 42
    assert value(got, "healthstream_event_time_lag_seconds") is None  # no event yet

    lagging = WorkerMetrics(
        consumer_lag=lambda: {("telemetry", 2): 10, ("telemetry", 0): 0, ("segment", 0): 3}
    )
    got = samples_of(generate_latest(lagging.registry).decode())
    lag = "healthstream_consumer_lag_records"
    assert value(got, lag, topic="telemetry", partition="2") == 10
    assert value(got, lag, topic="telemetry", partition="0") == 0
    assert value(got, lag, topic="segment", partition="0") == 3


def test_lag_counts_from_the_brokers_end_so_a_stalled_fetcher_shows() -> None:
    a, b, c = TP("telemetry", 0), TP("telemetry", 1), TP("segment", 0)
    committed = {a: 100, b: None, c: 7}
    # the fetcher stopped at 100 on partition 0; the brokers say the log reaches 900
    fetched = {a: 100, b: 40, c: None}
    probed = {a: 900, b: 30, c: 10}
    assert records_behind([a, b, c], committed, fetched, probed) == {
        ("telemetry", 0): 800,
        ("telemetry", 1): 40,  # a fetch later than the last probe counts
        ("segment", 0): 3,
    }
    # nothing known yet: left out, not reported as 0
    assert records_behind([a], {}, {}, {}) == {}
    # an end short of the commit (a broker that reports it so) reads as 0
    assert records_behind([a], {a: 50}, {a: 49}, {}) == {("telemetry", 0): 0}


def test_server_answers_over_http_and_a_taken_port_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics(accounts_tracked=lambda: 3)
    port = free_port()
    server = MetricsServer(metrics.registry, port, "127.0.0.1")
    server.start()
    try:
        assert value(samples_of(scrape(port)), "healthstream_accounts_tracked") == 3
        second = MetricsServer(WorkerMetrics().registry, port, "127.0.0.1")
        with caplog.at_level(logging.ERROR, logger="stream.metrics"):
            second.start()
        assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
    finally:
        server.stop()
    with pytest.raises(OSError):
        scrape(port)
    MetricsServer(metrics.registry, 0).start()  # port 0: nothing to serve, nothing raised


def promtool_check_metrics(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    run = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_exposition_passes_promtool_check_metrics(tmp_path: Path) -> None:
    metrics = WorkerMetrics(
        consumer_lag=lambda: {("telemetry", 0): 5},
        accounts_tracked=lambda: 1,
        recovery=lambda: (False, 0),
    )
    sink = ThreadedSink(JsonlFileSink(tmp_path / "out.jsonl"))
    register_sinks(metrics, [sink])
    asyncio.run(sink.aclose())
    scorer = BatchScorer(engine(), StrKeyedBytesStore({}, {}))
    lines = as_lines(silent_account_stream(accounts=2, days=10))
    batch = [InputRecord(0, i, line) for i, line in enumerate(lines)]
    metrics.observe_batch(scorer.counters, scorer.process(batch), len(batch), 0.01, 0.02)
    promtool_check_metrics(generate_latest(metrics.registry).decode())


class FlakyReceiver(BaseHTTPRequestHandler):
    """A webhook endpoint that answers 503 to its first request, then 200."""

    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        self.rfile.read(int(self.headers["Content-Length"]))
        FlakyReceiver.requests += 1
        self.send_response(503 if FlakyReceiver.requests == 1 else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.mark.integration
def test_a_running_worker_serves_metrics_that_follow_its_input(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), FlakyReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    secret = f"webhook-secret-{uuid.uuid4().hex[:8]}"
    settings = fresh_settings(
        kafka_bootstrap,
        "metrics",
        metrics_port=port,
        metrics_addr="127.0.0.1",
        output_file=str(tmp_path / "outputs.jsonl"),
        webhook_url=f"http://127.0.0.1:{receiver.server_address[1]}/scores",
        webhook_secret=secret,
    )
    records = silent_account_stream(accounts=3, days=30)
    bad = [b"not json at all", b'{"event_id":"x","account_id":"a","type":"warp","ts":1}']
    expected = MemorySink()
    replay(as_lines(records), engine(), expected)
    want = [e for _, e in expected.events]
    ticks = sum(r["type"] == "tick" for r in records) * settings.partitions
    kafka_records = ticks + sum(r["type"] != "tick" for r in records) + len(bad)
    asyncio.run(produce_records(settings, records))
    asyncio.run(produce_raw(kafka_bootstrap, settings.input_topic, bad))

    worker = WorkerProcess(settings, tmp_path)
    try:
        with worker:
            committed = asyncio.run(wait_for_commits(settings, kafka_records, 120))
            assert committed, worker.log_tail()
            text = scrape_until_settled(port, settings.partitions, settings.input_topic)
        assert secret not in worker.log_path.read_text()
    finally:
        receiver.shutdown()
        receiver.server_close()
    got = samples_of(text)
    assert secret not in text

    for event_type, count in Counter(r["type"] for r in records if r["type"] != "tick").items():
        assert value(got, "healthstream_events_total", type=event_type) == count, text
    assert value(got, "healthstream_events_total", type="tick") == ticks
    assert value(got, "healthstream_dead_letters_total", reason="not_json") == 1
    assert value(got, "healthstream_dead_letters_total", reason="unknown_type") == 1
    kinds = Counter(out["kind"] for out in want)
    for kind in OUTPUT_KINDS:
        assert value(got, "healthstream_outputs_total", kind=kind) == kinds[kind]
    zones = final_zones(want)
    for zone in ACCOUNT_ZONES:
        assert value(got, "healthstream_accounts_by_zone", zone=zone) == zones[zone]
    assert value(got, "healthstream_accounts_tracked") == 4
    for partition in range(settings.partitions):
        assert (
            value(
                got,
                "healthstream_consumer_lag_records",
                topic=settings.input_topic,
                partition=str(partition),
            )
            == 0
        )
    assert value(got, "healthstream_table_recovery_active") == 0
    assert (value(got, "healthstream_event_processing_seconds_count") or 0) >= 1
    newest = max(r["ts"] for r in records) / 1000
    lag = value(got, "healthstream_event_time_lag_seconds")
    assert lag is not None and abs(lag - (time.time() - newest)) < 60
    assert value(got, "healthstream_sink_deliveries_total", sink="file") == len(want)
    assert value(got, "healthstream_sink_deliveries_total", sink="webhook") == len(want)
    assert (value(got, "healthstream_sink_retries_total", sink="webhook") or 0) >= 1
    assert value(got, "healthstream_sink_failures_total", sink="webhook") == 0
    promtool_check_metrics(text)


def scrape_until_settled(port: int, partitions: int, topic: str, timeout: float = 30) -> str:
    """The exposition once every input partition reports a lag of 0 (all committed)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(port)
        got = samples_of(text)
        lags = [
            value(got, "healthstream_consumer_lag_records", topic=topic, partition=str(p))
            for p in range(partitions)
        ]
        if all(lag == 0 for lag in lags) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_build_info_names_the_versions_and_the_scoring_configuration() -> None:
    from importlib.metadata import version

    metrics = WorkerMetrics(config_version="abc123def456")
    [family] = [
        f
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if f.name == "healthstream_build_info"
    ]
    [sample] = family.samples
    assert sample.value == 1
    assert sample.labels["version"] == version("healthstream")
    assert sample.labels["config_version"] == "abc123def456"
    assert sample.labels["faust"] == version("faust-streaming")
    assert sample.labels["aiokafka"] == version("aiokafka")


def test_zone_gauges_start_from_the_accounts_held_and_move_from_there() -> None:
    metrics = WorkerMetrics()
    metrics.set_zones({"healthy": 5, "critical": 1})
    metrics.observe_outputs(
        [{"kind": "score_changed", "zone": "at_risk", "previous_zone": "healthy"}]
    )
    got = samples_of(generate_latest(metrics.registry).decode())
    zones = {z: value(got, "healthstream_accounts_by_zone", zone=z) for z in ACCOUNT_ZONES}
    assert zones == {"healthy": 4, "at_risk": 1, "critical": 1, "onboarding": 0}


@pytest.mark.integration
def test_a_restarted_worker_counts_its_accounts_by_zone_from_the_table(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = fresh_settings(kafka_bootstrap, "zones", metrics_port=port, metrics_addr="127.0.0.1")
    records = silent_account_stream(accounts=6, days=40)
    expected = MemorySink()
    replay(as_lines(records), engine(), expected)
    zones = final_zones([e for _, e in expected.events])
    ticks = sum(r["type"] == "tick" for r in records)
    kafka_records = ticks * settings.partitions + len(records) - ticks
    asyncio.run(produce_records(settings, records))
    first = WorkerProcess(settings, tmp_path / "first")
    with first:
        assert asyncio.run(wait_for_commits(settings, kafka_records, 120)), first.log_tail()
    # a new worker, with no local state: it recovers the table and emits nothing new
    second = WorkerProcess(settings, tmp_path / "second")
    with second:
        deadline = time.monotonic() + 60
        while True:
            try:
                got = samples_of(scrape(port))
            except OSError:  # not listening yet
                time.sleep(0.5)
                continue
            seen = {z: value(got, "healthstream_accounts_by_zone", zone=z) for z in ACCOUNT_ZONES}
            if all(seen[z] == zones[z] for z in ACCOUNT_ZONES) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert value(got, "healthstream_outputs_total", kind="score_changed") == 0
    assert seen == {z: zones[z] for z in ACCOUNT_ZONES}, second.log_tail()
    assert sum(zones.values()) == len({e["account_id"] for _, e in expected.events}) > 1
