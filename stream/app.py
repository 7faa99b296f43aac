"""The Faust app: input topic → account table (changelog-backed) → score → output topic.

Source topics in other shapes (``inputs`` in the settings) are mapped to the contract and
forwarded to the input topic, keyed by account (see ``map_sources``).

Faust owns the consumer group, partition assignment, the table and its changelog, table
recovery and offset commits. The input topic's records reach ``Worker.handle_batch`` a
fetched batch at a time (see ``stream.faust_internals``): every event is applied and rescored, score
changes go to the output topic and records that cannot be applied to the dead-letter
topic. Account snapshots are written behind (``WriteBehind``): once per account per
flush, to the changelog and the store, and a batch's records are acknowledged only after
the flush that covers them, so a commit never runs ahead of the changelog.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import faust
import orjson
from faust.types import TP, Message

from scoring.engine import HealthEngine
from scoring.outputs import OutputEvent
from sinks import AsyncSink, DeliveryFailure
from stream.batches import KeyPartitioner, PartitionBatches
from stream.destinations import build_sinks
from stream.faust_internals import (
    BatchApp,
    BatchConsumer,
    BatchIntake,
    BatchTableManager,
    aiokafka_producer,
    memory_key_partition,
    recovery_progress,
    rocksdb_databases,
)
from stream.kafka import faust_credentials
from stream.metrics import MetricsServer, WorkerMetrics, register_sinks
from stream.scorer import (
    BatchResult,
    BatchScorer,
    InputRecord,
    PendingFlush,
    RocksAccountStates,
    StrKeyedBytesStore,
    WriteBehind,
)
from stream.settings import Settings, build_engine
from stream.topics import CHANGELOG_SEGMENT_BYTES
from stream.web import RECENT, RecentChanges, add_account_views, with_request_limits
from telemetry.codec import BadEvent
from telemetry.limits import DeadLetterRecord, dead_letter
from telemetry.mapping import Skipped
from windows.snapshot import snapshot_zone
from windows.telemetry import EventType

#: the key of the tombstone that ends each flush in the changelog. No account id can be
#: it: an account's key is its id in UTF-8, and the byte 0xFF never occurs in UTF-8
FLUSH_MARK = b"\xffhealthstream-flush"
#: accounts a flush writes between two batches: about 10-40 ms of encoding
FLUSH_SLICE = 250
#: the largest record batch the worker writes: under Kafka's default 1 MB message limit
PRODUCER_BATCH_BYTES = 512 * 1024


class HealthApp(BatchApp):
    """The worker's Faust app: its sinks closed and its metrics served around Faust's life."""

    #: destinations besides the output topic (see ``stream.destinations``)
    healthstream_sinks: list[AsyncSink] = []
    #: serves ``/metrics`` from start-up, table recovery included (see ``stream.metrics``)
    healthstream_metrics_server: MetricsServer | None = None
    #: what the worker scores with (its profile, its config version)
    healthstream_engine: HealthEngine | None = None
    #: waits for the worker's flush under way, if any
    healthstream_finish_flush: Callable[[], Awaitable[None]] | None = None

    def adapt_web(self, web: Any) -> Any:
        return with_request_limits(web)

    async def on_start(self) -> None:
        if self.healthstream_metrics_server is not None:
            self.healthstream_metrics_server.start()
        await super().on_start()

    async def on_stop(self) -> None:
        """Finish the flush under way, and deliver what the sinks still hold (or hand it
        to the dead-letter topic), first."""
        if self.healthstream_finish_flush is not None:
            try:
                await self.healthstream_finish_flush()
            except Exception:  # noqa: BLE001 - its records are unacknowledged: read again
                self.log.exception("healthstream: the flush under way failed at stop")
        for sink in self.healthstream_sinks:
            await sink.aclose()
        await super().on_stop()
        if self.healthstream_metrics_server is not None:
            self.healthstream_metrics_server.stop()


def app_options(settings: Settings) -> dict[str, Any]:
    """Faust's configuration of the worker's app."""
    listen = settings.web_host or "127.0.0.1"
    reached_at = socket.gethostname() if listen in ("0.0.0.0", "::") else listen
    web_host = {
        "web_bind": listen,
        "web_host": reached_at,
        "canonical_url": f"http://{reached_at}:{settings.web_port}",
    }
    return {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": settings.store,
        "datadir": settings.data_dir,
        "topic_partitions": settings.partitions,
        "autodiscover": False,
        "web_enabled": settings.web_enabled,
        "web_port": settings.web_port,
        # Faust's own pages show the group's worker URLs, partitions and tables; the
        # account API does not need them (table routing forwards without /router/)
        "web_router_enabled": settings.web_builtin_views,
        "web_tables_enabled": settings.web_builtin_views,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        **web_host,
        "broker_credentials": faust_credentials(settings),
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
        "broker_max_poll_records": settings.batch_max,
        "consumer_max_fetch_size": 4 * 1024 * 1024,
        # outputs and snapshots go out as whole record batches (stream.batches)
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        "table_standby_replicas": 0,
        "TableManager": BatchTableManager,
    }


def account_states(table: Any, settings: Settings) -> StrKeyedBytesStore | RocksAccountStates:
    """The account states over the table's store: live objects in memory, or RocksDB."""
    if settings.store.startswith("rocksdb"):
        return RocksAccountStates(table.data, settings.max_cached_accounts)
    # the memory store holds snapshot bytes (after recovery, or of accounts past the
    # live bound) or live AccountState objects
    return StrKeyedBytesStore(
        table.data.data, memory_key_partition(table), settings.max_live_accounts or None
    )


def accounts_held(states: StrKeyedBytesStore | RocksAccountStates, table: Any) -> int:
    """How many accounts this worker's table holds; with RocksDB, RocksDB's own estimate."""
    if isinstance(states, StrKeyedBytesStore):
        return len(states)
    databases = rocksdb_databases(table)
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in databases)


class Worker:
    """One worker: its Faust app, its account table and the scoring of what it reads.

    Faust calls in at four points: ``handle_batch`` (the input topic, a fetched batch at a
    time), ``map_sources`` (source topics in other shapes), ``on_assigned`` and
    ``on_revoked`` (rebalances); a timer calls ``flush_when_quiet`` and, with a tick
    interval, the group leader's ``tick``. ``publish`` and ``flush`` write what a batch
    caused; one lock keeps batches, flushes and rebalances apart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = HealthApp(settings.app_id, **app_options(settings))
        self.engine = self.app.healthstream_engine = build_engine(settings)
        self.source = self.app.topic(
            settings.input_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.accounts = self.app.Table(
            "accounts",
            default=None,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            # when Faust creates the changelog itself (it makes it compacted)
            extra_topic_configs={"segment.bytes": str(CHANGELOG_SEGMENT_BYTES)},
        )
        self.states = account_states(self.accounts, settings)
        self.partitioner = KeyPartitioner()
        self.scorer = BatchScorer(
            self.engine,
            self.states,
            int(settings.max_future_skew_s * 1000) or None,
            settings.unknown_types == "skip",
            settings.wrong_keys,
            self.home_partition,
        )
        self.changelog_topic = self.accounts.changelog_topic.get_topic_name()
        self.write_behind = WriteBehind(settings.flush_interval_s, settings.flush_max_accounts)
        #: the flush under way, if any (see ``flush``)
        self.flushing: asyncio.Future[None] | None = None
        self.app.healthstream_finish_flush = self.finish_flush
        self.lock = asyncio.Lock()
        # kept for the HTTP API only: about 3 KB an account otherwise spent for nothing
        self.recent = RecentChanges(keep=RECENT if settings.web_enabled else 0)
        self.source_mappings = {source.topic: source.mapping for source in settings.inputs}
        self.sinks = self.app.healthstream_sinks = build_sinks(settings, self.sink_gave_up)
        self.metrics = self._metrics()
        if settings.web_enabled:
            add_account_views(
                self.app, self.accounts, self.scorer, self.engine, self.recent, self.local_accounts
            )
        self.app.intake = BatchIntake(
            input_topic=settings.input_topic,
            handle_batch=self.handle_batch,
            source_topics=frozenset(self.source_mappings),
            map_sources=self.map_sources,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self._subscribe()

    def _metrics(self) -> WorkerMetrics:
        metrics = WorkerMetrics(
            source_topics=[source.topic for source in self.settings.inputs],
            consumer_lag=lambda: cast(BatchConsumer, self.app.consumer).input_lag(),
            accounts_tracked=lambda: accounts_held(self.states, self.accounts),
            recovery=lambda: recovery_progress(self.app),
            config_version=self.engine.version,
            accounts_live=self.states.live_count,
            snapshots_decoded=lambda: self.scorer.book.decoded,
        )
        register_sinks(metrics, self.sinks)
        self.app.healthstream_metrics_server = MetricsServer(
            metrics.registry, self.settings.metrics_port, self.settings.metrics_addr
        )
        return metrics

    def _subscribe(self) -> None:
        """Join the group on the input and source topics; connect the timers and signals."""
        app = self.app

        @app.agent(self.source, name="score")
        async def subscribe(stream: Any) -> None:
            """Subscribes the group to the input topic; its records go to ``handle_batch``."""
            async for _ in stream:
                raise RuntimeError("input records must reach handle_batch, not the agent")

        if self.source_mappings:
            sources = app.topic(*self.source_mappings, key_serializer="raw", value_serializer="raw")

            @app.agent(sources, name="map")
            async def subscribe_sources(stream: Any) -> None:
                """Subscribes the group to the source topics; they go to ``map_sources``."""
                async for _ in stream:
                    raise RuntimeError("source records must reach map_sources, not the agent")

        app.timer(self.settings.flush_interval_s)(self.flush_when_quiet)
        app.timer(self.settings.lag_probe_interval_s)(self.probe_lag)
        if self.settings.tick_interval_s > 0:
            app.timer(self.settings.tick_interval_s, on_leader=True)(self.tick)
        # mode's signals call receivers as (sender, *args, signal=...): typed as taking any
        # arguments, which a receiver naming its own cannot be
        app.on_partitions_assigned.connect(cast(Any, self.on_assigned))
        app.on_partitions_revoked.connect(cast(Any, self.on_revoked))
        app.on_rebalance_complete.connect(cast(Any, self.on_rebalanced))

    # -- where accounts live ------------------------------------------------------------------

    def home_partition(self, account_id: str) -> int:
        """The input partition of an account: where Kafka's default partitioner puts its key."""
        return self.partitioner.partition(self.settings.input_topic, account_id.encode())

    def local_accounts(self) -> list[str]:
        """The accounts of the input partitions this worker holds."""
        if isinstance(self.states, StrKeyedBytesStore):
            return list(self.states)
        held = {tp.partition for tp in self.app.assignor.assigned_actives()}
        return [a for p in sorted(held) for a in self.states.keys_in_partition(p)]

    # -- what Faust calls -----------------------------------------------------------------------

    async def handle_batch(self, messages: list[Message]) -> None:
        """Score a fetched batch of input records, publish what it caused, flush when due."""
        records = [
            InputRecord(m.partition, m.offset, m.value, int(m.timestamp * 1000), m.key)
            for m in messages
        ]
        async with self.lock:
            if self.settings.wrong_keys == "forward":
                await self.partitioner.refresh(
                    aiokafka_producer(self.app), self.settings.input_topic
                )
            started = time.perf_counter()
            result = self.scorer.process(records)
            # at once, before any await: a flush under way must see what the batch changed
            self.write_behind.changed(result.touched)
            if self.scorer.freezing is not None:
                # a flush under way keeps pace with the input: it writes as many accounts
                # as the batch had records, so it ends before the next one is due
                self.scorer.freezing.write_some(len(records))
            scored = time.perf_counter()
            pending = await self.publish(result)
            if pending:
                await asyncio.gather(*pending)
            outputs = [out for _, out, _ in result.outputs]
            if outputs:
                self.recent.add(outputs)
            if self.sinks and outputs:
                await asyncio.gather(*(sink.deliver_batch(outputs) for sink in self.sinks))
            self.write_behind.published(messages)
            if self.write_behind.due(time.monotonic()):
                await self.flush()
            self.metrics.observe_batch(
                self.scorer.counters,
                result,
                len(records),
                scored - started,
                time.perf_counter() - started,
            )

    async def map_sources(self, messages: list[Message]) -> None:
        """Map source records to contract events and forward them to the input topic, keyed
        by account, so that an account's events meet in one partition whatever their
        source; a record is acknowledged once forwarded, dead-lettered or skipped."""
        pending: list[Any] = []
        forwarded: Tally[tuple[str, str]] = Tally()
        skipped: Tally[str] = Tally()
        dead: Tally[str] = Tally()
        for message in messages:
            try:
                contract, event = self.source_mappings[message.topic].decode(message.value or b"")
            except Skipped as exc:
                skipped[exc.reason] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a record must never stop the worker
                reason = exc.reason if isinstance(exc, BadEvent) else "unprocessable"
                if reason == "unprocessable":
                    self.app.log.exception("healthstream: source record could not be mapped")
                dead[reason] += 1
                letter = dead_letter(
                    message.topic,
                    message.partition,
                    message.offset,
                    message.key,
                    message.value,
                    reason,
                    str(exc),
                )
                pending.append(await self.send_dead_letter(letter))
                continue
            forwarded[(message.topic, event.type.value)] += 1
            pending += await self._forward_mapped(message.topic, contract, event)
        await asyncio.gather(*pending)
        self.acknowledge(messages)
        self.metrics.observe_sources(forwarded, skipped, dead)

    async def on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == self.settings.input_topic)
        self.app.log.info("healthstream: scoring input partitions %s", mine)

    async def on_rebalanced(self, sender: Any, **kwargs: Any) -> None:
        """Once the table holds the assigned partitions' accounts: count them by zone, so
        the zone gauges start from the accounts held, not from nothing at every start."""
        async with self.lock:
            self.metrics.set_zones(self.zones_held())

    def zones_held(self) -> Tally[str]:
        """The accounts of this worker's partitions by their last emitted zone."""
        zones: Tally[str] = Tally()
        for account in self.local_accounts():
            value = self.states.get(account)
            if value is None:
                continue
            zone = snapshot_zone(value) if isinstance(value, bytes) else value.last_zone
            if zone:
                zones[zone] += 1
        return zones

    async def on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        """Put the revoked partitions' unflushed accounts back to their last snapshot, and
        forget their records: the next owner reads them again from the last commit."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.settings.input_topic}
        async with self.lock:
            await self.finish_flush()
            self.states.roll_back(self.write_behind.forget_partitions(partitions))
            flushed = self.write_behind.flushed_upto
            self.scorer.rewind({p: flushed.get(p, -1) for p in partitions})

    async def flush_when_quiet(self) -> None:
        """Flush what a quiet input left pending, so its offsets get committed."""
        async with self.lock:
            if self.flushing is not None and self.flushing.done():
                await self.finish_flush()  # a failed flush raises here
            if self.write_behind.due(time.monotonic()):
                await self.flush()

    async def probe_lag(self) -> None:
        """Ask the brokers how far each assigned partition reaches, for the lag gauge; a
        failed answer leaves the last one in place (the gauge then reads the fetches')."""
        try:
            await cast(BatchConsumer, self.app.consumer).probe_ends()
        except Exception as exc:  # noqa: BLE001 - a metric must never stop the worker
            self.app.log.warning("healthstream: end offsets not read: %s", exc)

    async def tick(self) -> None:
        """Append a wall-clock tick to every input partition, so silent accounts age."""
        tick = orjson.dumps({"type": "tick", "ts": int(time.time() * 1000)})
        for partition in range(self.settings.partitions):
            await self.source.send(value=tick, partition=partition)

    # -- what the worker writes ---------------------------------------------------------------

    async def publish(self, result: BatchResult) -> list[asyncio.Future[Any]]:
        """Write the outputs (as record batches), dead letters and records forwarded to their
        account's partition; returns what to await."""
        pending: list[Any] = []
        if result.outputs:
            pending.append(asyncio.ensure_future(await self._output_batches(result)))
        for dead in result.dead_letters:
            record = dead.record
            letter = dead_letter(
                self.settings.input_topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                dead.reason,
                dead.message,
            )
            pending.append(await self.send_dead_letter(letter))
        for account_id, home, record in result.forwards:
            headers = [
                ("reason", b"wrong_key"),
                ("source_topic", self.settings.input_topic.encode()),
                ("source_partition", str(record.partition).encode()),
                ("source_offset", str(record.offset).encode()),
            ]
            topic, key = self.settings.input_topic, account_id.encode()
            pending.append(
                await self.app.producer.send(topic, key, record.value, home, None, headers)
            )
        return pending

    async def _output_batches(self, result: BatchResult) -> Any:
        """The batch's outputs as one record batch per output partition; what delivers them."""
        producer = aiokafka_producer(self.app)
        topic = self.settings.output_topic
        await self.partitioner.refresh(producer, topic)
        batches = PartitionBatches(producer)
        partition_of = self.partitioner.partition
        dumps = orjson.dumps
        for account_id, out, record in result.outputs:
            key = account_id.encode()
            headers = [
                ("content-type", b"application/json"),
                ("kind", out["kind"].encode()),
                ("schema_version", b"%d" % out["schema_version"]),
                ("source_partition", str(record.partition).encode()),
                ("source_offset", str(record.offset).encode()),
                ("source_timestamp_ms", str(record.timestamp_ms).encode()),
            ]
            batches.add(topic, partition_of(topic, key), key, dumps(out), headers)
        return batches.deliver()

    async def _forward_mapped(self, topic: str, contract: dict[str, Any], event: Any) -> list[Any]:
        """Send a mapped source record to the input topic: a tick to every partition, an
        event keyed by its account."""
        headers = [("source_topic", topic.encode())]
        body = orjson.dumps(contract)
        send = self.app.producer.send
        input_topic = self.settings.input_topic
        if event.type is EventType.TICK:
            return [
                await send(input_topic, None, body, partition, None, headers)
                for partition in range(self.settings.partitions)
            ]
        return [await send(input_topic, event.account_id.encode(), body, None, None, headers)]

    async def send_dead_letter(self, letter: DeadLetterRecord) -> Any:
        """Send a dead letter to the dead-letter topic; returns what to await."""
        return await self.app.producer.send(
            self.settings.dead_letter_topic, letter.key, letter.value, None, None, letter.headers
        )

    async def sink_gave_up(self, event: OutputEvent, failure: DeliveryFailure) -> None:
        """An output a sink gave up on goes to the dead-letter topic with the reason."""
        headers = [
            ("reason", failure.reason.encode()),
            ("error", failure.error.encode()),
            ("attempts", str(failure.attempts).encode()),
            ("source_topic", self.settings.output_topic.encode()),
        ]
        key = str(event.get("account_id", "")).encode()
        letter = DeadLetterRecord(key, orjson.dumps(event), headers)
        await (await self.send_dead_letter(letter))

    async def flush(self) -> None:
        """Begin a flush: one snapshot per dirty account as it is now, written a slice at a
        time while batches go on (``PendingFlush``), then the records they cover
        acknowledged. The flush before it, if still under way, is finished first."""
        await self.finish_flush()
        dirty, unacked = self.write_behind.take(time.monotonic())
        batches = PartitionBatches(aiokafka_producer(self.app))
        changelog, scorer, states = self.changelog_topic, self.scorer, self.states

        def write(account_id: str, partition: int) -> None:
            blob = scorer.snapshot(account_id)
            states.persist(account_id, partition, blob)
            batches.add(changelog, partition, account_id.encode(), blob)

        pending = PendingFlush(dirty, unacked, write)
        if not pending.write_some(FLUSH_SLICE):
            scorer.freezing = pending
        self.flushing = asyncio.ensure_future(self._complete_flush(pending, batches))

    async def finish_flush(self) -> None:
        """Wait for the flush under way, if any; a failed flush raises here."""
        flushing, self.flushing = self.flushing, None
        if flushing is not None:
            await flushing

    async def _complete_flush(self, pending: PendingFlush, batches: PartitionBatches) -> None:
        try:
            while not pending.write_some(FLUSH_SLICE):
                await asyncio.sleep(0)  # let the next batch in between slices
        finally:
            self.scorer.freezing = None
        if pending.accounts:
            await self._write_snapshots(batches)
        # accounts changed since the flush began stay live: their snapshot is behind them
        self.states.trim(self.write_behind.dirty)
        # a commit must not cover an output a sink has not delivered (or given up on)
        await asyncio.gather(*(sink.drain() for sink in self.sinks))
        self.acknowledge(pending.unacked)

    async def _write_snapshots(self, batches: PartitionBatches) -> None:
        """Send the flush's snapshots to the changelog, then each partition's flush mark."""
        changelog = self.changelog_topic
        written = await batches.deliver()
        # A lone tombstone closes each partition's flush in a batch of its own: a broker
        # that reports a partition's end as its last batch's base offset + 1 (Tansu) then
        # still reports the true end, so recovery reads every snapshot of the flush.
        marks = PartitionBatches(aiokafka_producer(self.app))
        for _, partition in sorted(written):
            marks.add(changelog, partition, FLUSH_MARK, None)
        await marks.deliver()
        if isinstance(self.states, RocksAccountStates):
            # recovery then reads the changelog only past what RocksDB already holds
            for (_, partition), offset in written.items():
                store = cast(Any, self.accounts.data)  # Faust's rocksdb Store
                store.set_persisted_offset(TP(changelog, partition), offset)

    def acknowledge(self, messages: Iterable[Message]) -> None:
        ack = self.app.consumer.ack
        for message in messages:
            ack(message)


def startup_line(settings: Settings, changelogs: list[str], engine: HealthEngine) -> str:
    """What a worker says once the broker answers: where it reads and writes, what it
    scores with, and where to look at it (secrets are never part of it)."""
    sources = "".join(f", {source.topic} (mapped)" for source in settings.inputs)
    metrics = (
        f"http://{settings.metrics_addr}:{settings.metrics_port}/metrics"
        if settings.metrics_port
        else "off"
    )
    web = (
        f"http://{settings.web_host}:{settings.web_port}/accounts/"
        if settings.web_enabled
        else "off"
    )
    return (
        f"worker: broker {settings.bootstrap_servers} ({settings.kafka_security_protocol}), "
        f"group {settings.app_id}, reading {settings.input_topic}{sources}, "
        f"writing {settings.output_topic}, dead letters {settings.dead_letter_topic}, "
        f"changelog {', '.join(changelogs)}, store {settings.store}, "
        f"profile {engine.profile.name} ({engine.version}), metrics {metrics}, API {web}"
    )


def create_app(settings: Settings) -> HealthApp:
    """Build the worker's Faust app from settings; ``faust.Worker`` runs it."""
    return Worker(settings).app


def run_worker(app: HealthApp, loglevel: str) -> None:
    """Run the app as a Faust worker until it is stopped."""
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
