"""The worker's Prometheus metrics, in a registry of their own, served on ``/metrics``.

Counters and histograms move once per batch: ``WorkerMetrics.observe_batch`` takes the
deltas of ``BatchScorer.counters`` (by ``Fate`` and label) and the batch's acknowledged
outputs. Gauges whose numbers someone else keeps (consumer offsets, table recovery, the
account table) are read when Prometheus scrapes, from the callables the worker hands over.

The server is prometheus_client's own, on a thread of its own, rather than a view on
Faust's web server: it answers while the event loop works through a large batch or a
table recovery (Faust starts its web server only once recovery is over), and whether or
not the worker serves its HTTP API.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from threading import Thread
from typing import Any, NamedTuple, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scoring.profile import ZONES
from sinks import AsyncSink, JsonlFileSink, ScoreHistory, ThreadedSink, WebhookSink
from stream.scorer import FORWARD_REASONS, WORKER_REASONS, BatchResult, Counted, Fate
from telemetry.codec import REASONS
from telemetry.mapping import MAPPING_REASONS, SKIP_REASONS
from windows.telemetry import EventType

log = logging.getLogger(__name__)

#: every zone an account can be in: the profile's bands, and onboarding before them
ACCOUNT_ZONES = (*ZONES, "onboarding")
#: every kind of output event, counted from the first batch on
OUTPUT_KINDS = ("score_changed", "override_applied", "override_cleared", "alert")
#: scoring time per event: from a microsecond to a tenth of a second
EVENT_SECONDS_BUCKETS = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    1e-2,
    0.1,
)
#: a whole batch, scoring to acknowledgements: from a millisecond to half a minute
BATCH_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

T = TypeVar("T")


class SinkCounts(NamedTuple):
    """A sink's own running totals: events delivered, given up on, and retried attempts."""

    deliveries: int
    failures: int = 0
    retries: int = 0


class WorkerMetrics:
    """Every metric of one worker, in its own ``CollectorRegistry``.

    The readers are called at scrape time, on the metrics server's thread:
    ``consumer_lag`` gives records past the committed offset per (topic, partition) of the
    input and source topics,
    ``accounts_tracked`` the accounts in this worker's table, ``recovery`` whether the
    table is recovering and how many changelog records it still has to read,
    ``accounts_live`` how many of the accounts are live objects and ``snapshots_decoded``
    how many snapshots the worker has decoded so far.
    """

    def __init__(
        self,
        source_topics: Sequence[str] = (),
        consumer_lag: Callable[[], Mapping[tuple[str, int], int]] | None = None,
        accounts_tracked: Callable[[], int] | None = None,
        recovery: Callable[[], tuple[bool, int]] | None = None,
        config_version: str = "",
        accounts_live: Callable[[], int] | None = None,
        snapshots_decoded: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._build_info(config_version)
        self._record_metrics()
        self._time_metrics()
        self._output_metrics()
        self._start_at_zero(source_topics)
        #: the newest event time (epoch ms) of any batch so far; -1: none yet
        self.newest_event_ms = -1
        self._seen: dict[Counted, int] = {}
        self.sinks: dict[str, Callable[[], SinkCounts]] = {}
        self.registry.register(
            _LiveGauges(
                self, consumer_lag, accounts_tracked, recovery, accounts_live, snapshots_decoded
            )
        )
        self.registry.register(_SinkCounters(self.sinks))

    def _build_info(self, config_version: str) -> None:
        """What the worker runs: 1, labelled with the versions (an info metric)."""
        labels = {
            "version": _package_version("healthstream"),
            "config_version": config_version,
            "python": platform.python_version(),
            "faust": _package_version("faust-streaming"),
            "aiokafka": _package_version("aiokafka"),
        }
        Gauge(
            "healthstream_build_info",
            "Always 1: the versions this worker runs and the scoring configuration it emits "
            "under (config_version, as on every output).",
            list(labels),
            registry=self.registry,
        ).labels(**labels).set(1)

    def _record_metrics(self) -> None:
        """What became of input records: applied by type, dead-lettered, skipped, forwarded."""
        self.events = Counter(
            "healthstream_events",
            "Input records applied, by event type (tick for time ticks).",
            ["type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "healthstream_dead_letters",
            "Input records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "healthstream_duplicates_skipped",
            "Events skipped because their account had already applied their event_id.",
            registry=self.registry,
        )
        self.reread = Counter(
            "healthstream_records_reread",
            "Records skipped because their offset was already applied (a seek back).",
            registry=self.registry,
        )
        self.forwarded = Counter(
            "healthstream_records_forwarded",
            "Input records appended again to their account's partition, keyed by the account, "
            "instead of applied where they were read, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "healthstream_records_skipped",
            "Records skipped on purpose without a dead letter, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def _time_metrics(self) -> None:
        self.event_seconds = Histogram(
            "healthstream_event_processing_seconds",
            "Scoring time per event (decode, apply, rescore): each batch's mean per record, "
            "observed once per batch.",
            buckets=EVENT_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "healthstream_batch_duration_seconds",
            "Time to handle one fetched batch: scoring, sending outputs and dead letters, "
            "waiting for their acknowledgements, and delivering to the sinks.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=self.registry,
        )

    def _output_metrics(self) -> None:
        """What the worker emitted: outputs by kind, accounts by zone, forwarded sources."""
        self.outputs = Counter(
            "healthstream_outputs",
            "Output events acknowledged by the output topic, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.zone_accounts = Gauge(
            "healthstream_accounts_by_zone",
            "Accounts per zone: the accounts of this worker's partitions, counted from the "
            "table after each rebalance and moved by each score change since (sum over all "
            "workers of a group).",
            ["zone"],
            registry=self.registry,
        )
        self.source_events = Counter(
            "healthstream_source_events",
            "Source-topic records mapped to contract events and forwarded to the input topic, "
            "by source topic and event type.",
            ["topic", "type"],
            registry=self.registry,
        )

    def _start_at_zero(self, source_topics: Sequence[str]) -> None:
        """Every label a dashboard or rule asks for, exported at 0 before it first moves."""
        for event_type in EventType:
            self.events.labels(type=event_type.value)
            for topic in source_topics:
                self.source_events.labels(topic=topic, type=event_type.value)
        for reason in sorted(REASONS | set(MAPPING_REASONS) | set(WORKER_REASONS)):
            self.dead_letters.labels(reason=reason)
        for reason in FORWARD_REASONS:
            self.forwarded.labels(reason=reason)
        if source_topics:
            for reason in SKIP_REASONS:
                self.skipped.labels(reason=reason)
        for kind in OUTPUT_KINDS:
            self.outputs.labels(kind=kind)
        for zone in ACCOUNT_ZONES:
            self.zone_accounts.labels(zone=zone)

    def register_sink(self, name: str, read: Callable[[], SinkCounts]) -> None:
        """Expose a sink's plain counters, read by ``read`` at every scrape, as ``sink=name``."""
        if name in self.sinks:
            raise ValueError(f"sink {name!r}: already registered")
        self.sinks[name] = read

    def observe_batch(
        self,
        counters: Mapping[Counted, int],
        result: BatchResult,
        records: int,
        scoring_s: float,
        batch_s: float,
    ) -> None:
        """Count a handled batch: the scorer's running ``counters`` (their growth since the
        last batch), its acknowledged outputs, its newest event time and its timings."""
        seen = self._seen
        for key, total in counters.items():
            grown = total - seen.get(key, 0)
            if grown > 0:
                seen[key] = total
                self._count(key, grown)
        self.observe_outputs(out for _, out, _ in result.outputs)
        if result.newest_event_ms > self.newest_event_ms:
            self.newest_event_ms = result.newest_event_ms
        if records:
            self.event_seconds.observe(scoring_s / records)
        self.batch_seconds.observe(batch_s)

    def _count(self, key: Counted, n: int) -> None:
        fate, label = key
        if fate is Fate.EVENT:
            self.events.labels(type=label).inc(n)
        elif fate is Fate.TICK:
            self.events.labels(type=EventType.TICK.value).inc(n)
        elif fate is Fate.DEAD_LETTER:
            self.dead_letters.labels(reason=label).inc(n)
        elif fate is Fate.DUPLICATE:
            self.duplicates.inc(n)
        elif fate is Fate.REREAD:
            self.reread.inc(n)
        elif fate is Fate.SKIPPED:
            self.skipped.labels(reason=label).inc(n)
        elif fate is Fate.FORWARDED:
            self.forwarded.labels(reason=label).inc(n)

    def observe_sources(
        self,
        forwarded: Mapping[tuple[str, str], int],
        skipped: Mapping[str, int],
        dead_letters: Mapping[str, int],
    ) -> None:
        """Count a batch of source-topic records: forwarded by (topic, type), skipped and
        dead-lettered by reason."""
        for (topic, event_type), n in forwarded.items():
            self.source_events.labels(topic=topic, type=event_type).inc(n)
        for reason, n in skipped.items():
            self.skipped.labels(reason=reason).inc(n)
        for reason, n in dead_letters.items():
            self.dead_letters.labels(reason=reason).inc(n)

    def set_zones(self, zones: Mapping[str, int]) -> None:
        """Start the zone gauges from a count of the accounts held (after a rebalance)."""
        for zone in ACCOUNT_ZONES:
            self.zone_accounts.labels(zone=zone).set(zones.get(zone, 0))

    def observe_outputs(self, outputs: Iterable[Mapping[str, Any]]) -> None:
        """Count outputs by kind, and move accounts between zones on each score change."""
        kinds: Tally[str] = Tally()
        zones: Tally[str] = Tally()
        for out in outputs:
            kind = out["kind"]
            kinds[kind] += 1
            if kind == "score_changed":
                zones[out["zone"]] += 1
                if out.get("previous_zone"):
                    zones[out["previous_zone"]] -= 1
        for kind, n in kinds.items():
            self.outputs.labels(kind=kind).inc(n)
        for zone, n in zones.items():
            if n:
                self.zone_accounts.labels(zone=zone).inc(n)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def register_sinks(metrics: WorkerMetrics, sinks: Sequence[AsyncSink]) -> None:
    """Feed the running totals the worker's sinks keep into ``healthstream_sink_*``."""
    for sink in sinks:
        found = _sink_totals(sink.sink if isinstance(sink, ThreadedSink) else sink)
        if found is not None:
            metrics.register_sink(*found)


def _sink_totals(sink: object) -> tuple[str, Callable[[], SinkCounts]] | None:
    """A sink's name on ``/metrics`` and how to read its totals; None for a sink with none."""
    if isinstance(sink, WebhookSink):
        webhook = sink
        return "webhook", lambda: SinkCounts(webhook.delivered, webhook.failed, webhook.retries)
    if isinstance(sink, ScoreHistory):
        history = sink
        # an event already stored (an output sent again after a restart) counts as delivered
        return "history", lambda: SinkCounts(history.written + history.duplicates)
    if isinstance(sink, JsonlFileSink):
        jsonl = sink
        return "file", lambda: SinkCounts(jsonl.delivered)
    return None


def series_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry exposes (``_total``, ``_bucket``, … included): what
    a dashboard or an alerting rule may query."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


class _LiveGauges(Collector):
    """Gauges read when Prometheus scrapes; a reading that fails is left out of that scrape."""

    def __init__(
        self,
        metrics: WorkerMetrics,
        consumer_lag: Callable[[], Mapping[tuple[str, int], int]] | None,
        accounts_tracked: Callable[[], int] | None,
        recovery: Callable[[], tuple[bool, int]] | None,
        accounts_live: Callable[[], int] | None = None,
        snapshots_decoded: Callable[[], int] | None = None,
    ) -> None:
        self.metrics = metrics
        self.consumer_lag = consumer_lag
        self.accounts_tracked = accounts_tracked
        self.recovery = recovery
        self.accounts_live = accounts_live
        self.snapshots_decoded = snapshots_decoded

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        lag, event_lag, tracked, recovering, remaining, live, decoded = self._families()
        for (topic, partition), records in sorted((_read(self.consumer_lag) or {}).items()):
            lag.add_metric([topic, str(partition)], records)
        newest = self.metrics.newest_event_ms
        if newest >= 0:
            event_lag.add_metric([], time.time() - newest / 1000)
        for family, source in (
            (tracked, self.accounts_tracked),
            (live, self.accounts_live),
            (decoded, self.snapshots_decoded),
        ):
            count = _read(source)
            if count is not None:
                family.add_metric([], count)
        state = _read(self.recovery)
        if state is not None:
            recovering.add_metric([], 1 if state[0] else 0)
            remaining.add_metric([], max(state[1], 0))
        return iter((lag, event_lag, tracked, recovering, remaining, live, decoded))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "healthstream_consumer_lag_records",
                "Records not yet committed, per assigned input and source partition: the "
                "end offset (asked of the brokers, or of the last fetch if later) minus the "
                "committed offset.",
                labels=["topic", "partition"],
            ),
            GaugeMetricFamily(
                "healthstream_event_time_lag_seconds",
                "Now minus the newest event time (ts of an event or tick) the worker applied.",
            ),
            GaugeMetricFamily(
                "healthstream_accounts_tracked",
                "Accounts in this worker's table (with RocksDB, RocksDB's estimate).",
            ),
            GaugeMetricFamily(
                "healthstream_table_recovery_active",
                "1 while the account table is being recovered from its changelog, else 0.",
            ),
            GaugeMetricFamily(
                "healthstream_table_recovery_remaining_records",
                "Changelog records the account table still has to read to be recovered.",
            ),
            GaugeMetricFamily(
                "healthstream_accounts_live",
                "Accounts held as live objects; the others are held as their snapshots "
                "(max_live_accounts) or in RocksDB (max_cached_accounts).",
            ),
            CounterMetricFamily(
                "healthstream_account_snapshots_decoded",
                "Account snapshots decoded into live states: after recovery, and for each "
                "event that finds its account held as a snapshot.",
            ),
        )


class _SinkCounters(Collector):
    """The sinks' own running totals, read when Prometheus scrapes."""

    def __init__(self, sinks: Mapping[str, Callable[[], SinkCounts]]) -> None:
        self.sinks = sinks

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        deliveries, failures, retries = self._families()
        for name, read in sorted(self.sinks.items()):
            counts = _read(read)
            if counts is None:
                continue
            deliveries.add_metric([name], counts.deliveries)
            failures.add_metric([name], counts.failures)
            retries.add_metric([name], counts.retries)
        return iter((deliveries, failures, retries))

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, ...]:
        return (
            CounterMetricFamily(
                "healthstream_sink_deliveries",
                "Output events a sink delivered (stored, written or accepted by the webhook).",
                labels=["sink"],
            ),
            CounterMetricFamily(
                "healthstream_sink_failures",
                "Output events a sink gave up on (handed to the dead-letter topic).",
                labels=["sink"],
            ),
            CounterMetricFamily(
                "healthstream_sink_retries",
                "Delivery attempts a sink made after the first, per event.",
                labels=["sink"],
            ),
        )


def _read(source: Callable[[], T] | None) -> T | None:
    """What ``source`` reads now, or None when there is no source or it cannot answer."""
    if source is None:
        return None
    try:
        return source()
    except Exception:  # a reading that races a rebalance must not fail the whole scrape
        log.debug("metrics: a reading failed", exc_info=True)
        return None


class MetricsServer:
    """Serves a registry over HTTP on its own thread; ``port`` 0 serves nothing."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:
        self.registry = registry
        self.port = port
        self.addr = addr
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def start(self) -> None:
        """Listen, unless disabled or already listening.

        A port already taken is logged and the worker carries on unobserved, rather than
        stopping: scoring matters more than its metrics, and Prometheus then reports the
        target down."""
        if self.port == 0 or self._server is not None:
            return
        try:
            self._server, self._thread = start_http_server(
                self.port, self.addr, registry=self.registry
            )
        except OSError as exc:
            log.error(
                "healthstream: metrics not served: cannot listen on %s:%s: %s",
                self.addr,
                self.port,
                exc.strerror or exc,
            )
            return
        log.info("healthstream: metrics on http://%s:%s/metrics", self.addr, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
