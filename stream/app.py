"""The Faust app: input topic → account table (changelog-backed) → score → output topic.

Source topics in other shapes (``inputs`` in the settings) are mapped to the contract and
forwarded to the input topic, keyed by account (see ``map_sources``).

Faust owns the consumer group, partition assignment, the table and its changelog, table
recovery and offset commits. The input topic's records reach ``handle_batch`` a fetched
batch at a time (see ``stream.intake``): every event is applied and rescored, score
changes go to the output topic and records that cannot be applied to the dead-letter
topic. Account snapshots are written behind (``WriteBehind``): once per account per
flush, to the changelog and the store, and a batch's records are acknowledged only after
the flush that covers them, so a commit never runs ahead of the changelog.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from typing import Any, cast

import faust
import orjson
from faust.types import TP, Message

from scoring.outputs import OutputEvent
from sinks import AsyncSink, DeliveryFailure
from stream.batches import KeyPartitioner, PartitionBatches
from stream.destinations import build_sinks
from stream.intake import BatchConsumer, BatchTransport
from stream.kafka import faust_credentials
from stream.metrics import MetricsServer, WorkerMetrics, register_sinks
from stream.recovery import BatchTableManager
from stream.scorer import (
    BatchResult,
    BatchScorer,
    InputRecord,
    RocksAccountStates,
    StrKeyedBytesStore,
    WriteBehind,
)
from stream.settings import Settings, build_engine
from stream.web import RecentChanges, add_account_views, with_request_limits
from telemetry.codec import BadEvent
from telemetry.limits import dead_letter
from telemetry.mapping import Skipped
from windows.telemetry import EventType

#: the key of the tombstone that ends each flush in the changelog. No account id can be
#: it: an account's key is its id in UTF-8, and the byte 0xFF never occurs in UTF-8
FLUSH_MARK = b"\xffhealthstream-flush"
#: the largest record batch the worker writes: under Kafka's default 1 MB message limit
PRODUCER_BATCH_BYTES = 512 * 1024


class HealthApp(faust.App):
    """A Faust app whose consumer hands the input topic over in batches."""

    #: destinations besides the output topic (see ``stream.destinations``)
    healthstream_sinks: list[AsyncSink] = []
    #: serves ``/metrics`` from start-up, table recovery included (see ``stream.metrics``)
    healthstream_metrics_server: MetricsServer | None = None

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def _new_web(self) -> Any:
        return with_request_limits(super()._new_web())

    async def on_start(self) -> None:
        if self.healthstream_metrics_server is not None:
            self.healthstream_metrics_server.start()
        await super().on_start()

    async def on_stop(self) -> None:
        """Deliver what the sinks still hold (or hand it to the dead-letter topic) first."""
        for sink in self.healthstream_sinks:
            await sink.aclose()
        await super().on_stop()
        if self.healthstream_metrics_server is not None:
            self.healthstream_metrics_server.stop()


def account_states(table: Any, settings: Settings) -> StrKeyedBytesStore | RocksAccountStates:
    """The account states over the table's store: live objects in memory, or RocksDB."""
    if settings.store.startswith("rocksdb"):
        return RocksAccountStates(table.data, settings.max_cached_accounts)
    # the memory store holds snapshot bytes (after recovery) or live AccountState objects
    return StrKeyedBytesStore(table.data.data, table.data._key_partition)


def accounts_held(states: StrKeyedBytesStore | RocksAccountStates, table: Any) -> int:
    """How many accounts this worker's table holds; with RocksDB, RocksDB's own estimate."""
    if isinstance(states, StrKeyedBytesStore):
        return len(states)
    databases = list(table.data._dbs.values())
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in databases)


def create_app(settings: Settings) -> HealthApp:
    """Build the worker's Faust app from settings; ``faust.Worker`` runs it."""
    app = HealthApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        # Faust's own pages show the group's worker URLs, partitions and tables; the
        # account API does not need them (table routing forwards without /router/)
        web_router_enabled=settings.web_builtin_views,
        web_tables_enabled=settings.web_builtin_views,
        web_stats_enabled=False,
        web_graph_enabled=False,
        **(
            {
                "web_host": settings.web_host,
                "canonical_url": f"http://{settings.web_host}:{settings.web_port}",
            }
            if settings.web_host
            else {}
        ),
        broker_credentials=faust_credentials(settings),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_max_poll_records=settings.batch_max,
        consumer_max_fetch_size=4 * 1024 * 1024,
        # outputs and snapshots go out as whole record batches (stream.batches)
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        table_standby_replicas=0,
        TableManager=BatchTableManager,
    )
    engine = build_engine(settings)
    source = app.topic(
        settings.input_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    accounts = app.Table(
        "accounts",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
    )
    states = account_states(accounts, settings)
    skew = int(settings.max_future_skew_s * 1000) or None
    partitioner = KeyPartitioner()

    def home_partition(account_id: str) -> int:
        """The input partition of an account: where Kafka's default partitioner puts its key."""
        return partitioner.partition(settings.input_topic, account_id.encode())

    scorer = BatchScorer(
        engine,
        states,
        skew,
        settings.unknown_types == "skip",
        settings.wrong_keys,
        home_partition,
    )
    changelog_topic = accounts.changelog_topic.get_topic_name()

    write_behind = WriteBehind(settings.flush_interval_s, settings.flush_max_accounts)
    lock = asyncio.Lock()
    send = app.producer.send

    async def to_dead_letters(event: OutputEvent, failure: DeliveryFailure) -> None:
        """An output a sink gave up on goes to the dead-letter topic with the reason."""
        headers = [
            ("reason", failure.reason.encode()),
            ("error", failure.error.encode()),
            ("attempts", str(failure.attempts).encode()),
            ("source_topic", settings.output_topic.encode()),
        ]
        key = str(event.get("account_id", "")).encode()
        await (
            await send(settings.dead_letter_topic, key, orjson.dumps(event), None, None, headers)
        )

    sinks = app.healthstream_sinks = build_sinks(settings, to_dead_letters)

    def table_recovery() -> tuple[bool, int]:
        """Whether the table is recovering, and how many changelog records it has to read."""
        recovery = app.tables._recovery  # type: ignore[attr-defined]
        if recovery is None:  # Faust creates it when the worker starts, on the worker's loop
            raise LookupError("table recovery has not started yet")
        return recovery.in_recovery, recovery.active_remaining_total()

    metrics = WorkerMetrics(
        source_topics=[source.topic for source in settings.inputs],
        consumer_lag=lambda: cast(BatchConsumer, app.consumer).input_lag(),
        accounts_tracked=lambda: accounts_held(states, accounts),
        recovery=table_recovery,
    )
    register_sinks(metrics, sinks)
    app.healthstream_metrics_server = MetricsServer(
        metrics.registry, settings.metrics_port, settings.metrics_addr
    )
    recent = RecentChanges()

    def local_accounts() -> list[str]:
        """The accounts of the input partitions this worker holds."""
        if isinstance(states, StrKeyedBytesStore):
            return list(states)
        held = {tp.partition for tp in app.assignor.assigned_actives()}
        return [a for p in sorted(held) for a in states.keys_in_partition(p)]

    if settings.web_enabled:
        add_account_views(app, accounts, scorer, engine, recent, local_accounts)

    def kafka_producer() -> Any:
        """The aiokafka producer under Faust's (started with the worker)."""
        return app.producer._ensure_producer()  # type: ignore[attr-defined]

    async def publish(result: BatchResult) -> list[asyncio.Future[Any]]:
        """Write the outputs (as record batches), dead letters and records forwarded to their
        account's partition; returns what to await."""
        pending: list[Any] = []
        if result.outputs:
            producer = kafka_producer()
            topic = settings.output_topic
            await partitioner.refresh(producer, topic)
            batches = PartitionBatches(producer)
            partition_of = partitioner.partition
            dumps = orjson.dumps
            for account_id, out, record in result.outputs:
                key = account_id.encode()
                headers = [
                    ("source_partition", str(record.partition).encode()),
                    ("source_offset", str(record.offset).encode()),
                    ("source_timestamp_ms", str(record.timestamp_ms).encode()),
                ]
                batches.add(topic, partition_of(topic, key), key, dumps(out), headers)
            pending.append(asyncio.ensure_future(batches.deliver()))
        for dead in result.dead_letters:
            record = dead.record
            letter = dead_letter(
                settings.input_topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                dead.reason,
                dead.message,
            )
            pending.append(
                await send(
                    settings.dead_letter_topic, letter.key, letter.value, None, None, letter.headers
                )
            )
        for account_id, home, record in result.forwards:
            headers = [
                ("reason", b"wrong_key"),
                ("source_topic", settings.input_topic.encode()),
                ("source_partition", str(record.partition).encode()),
                ("source_offset", str(record.offset).encode()),
            ]
            pending.append(
                await send(
                    settings.input_topic, account_id.encode(), record.value, home, None, headers
                )
            )
        return pending

    async def flush() -> None:
        """Write one snapshot per dirty account, then acknowledge the records they cover."""
        dirty, unacked = write_behind.take(time.monotonic())
        if dirty:
            batches = PartitionBatches(kafka_producer())
            for account_id, partition in dirty.items():
                blob = scorer.snapshot(account_id)
                states.persist(account_id, partition, blob)
                batches.add(changelog_topic, partition, account_id.encode(), blob)
            written = await batches.deliver()
            # A lone tombstone closes each partition's flush in a batch of its own: a broker
            # that reports a partition's end as its last batch's base offset + 1 (Tansu) then
            # still reports the true end, so recovery reads every snapshot of the flush.
            marks = PartitionBatches(kafka_producer())
            for _, partition in sorted(written):
                marks.add(changelog_topic, partition, FLUSH_MARK, None)
            await marks.deliver()
            if isinstance(states, RocksAccountStates):
                # recovery then reads the changelog only past what RocksDB already holds
                for (_, partition), offset in written.items():
                    accounts.data.set_persisted_offset(TP(changelog_topic, partition), offset)
        states.trim()
        # a commit must not cover an output a sink has not delivered (or given up on)
        await asyncio.gather(*(sink.drain() for sink in sinks))
        ack = app.consumer.ack
        for message in unacked:
            ack(message)

    async def handle_batch(messages: list[Message]) -> None:
        records = [
            InputRecord(m.partition, m.offset, m.value, int(m.timestamp * 1000), m.key)
            for m in messages
        ]
        async with lock:
            if settings.wrong_keys == "forward":
                await partitioner.refresh(kafka_producer(), settings.input_topic)
            started = time.perf_counter()
            result = scorer.process(records)
            scored = time.perf_counter()
            pending = await publish(result)
            if pending:
                await asyncio.gather(*pending)
            if result.outputs:
                recent.add(out for _, out, _ in result.outputs)
            if sinks and result.outputs:
                outputs = [out for _, out, _ in result.outputs]
                await asyncio.gather(*(sink.deliver_batch(outputs) for sink in sinks))
            write_behind.add(result.touched, messages)
            if write_behind.due(time.monotonic()):
                await flush()
            metrics.observe_batch(
                scorer.counters,
                result,
                len(records),
                scored - started,
                time.perf_counter() - started,
            )

    @app.timer(settings.flush_interval_s)
    async def flush_when_quiet() -> None:
        """Flush what a quiet input left pending, so its offsets get committed."""
        async with lock:
            if write_behind.due(time.monotonic()):
                await flush()

    @app.on_partitions_assigned.connect
    async def announce_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.input_topic)
        app.log.info("healthstream: scoring input partitions %s", mine)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == settings.input_topic}
        async with lock:
            states.roll_back(write_behind.forget_partitions(partitions))
            scorer.rewind({p: write_behind.flushed_upto.get(p, -1) for p in partitions})

    source_mappings = {source.topic: source.mapping for source in settings.inputs}

    async def map_sources(messages: list[Message]) -> None:
        """Map source records to contract events and forward them to the input topic, keyed
        by account, so that an account's events meet in one partition whatever their
        source; a record is acknowledged once forwarded, dead-lettered or skipped."""
        pending = []
        forwarded: Tally[tuple[str, str]] = Tally()
        skipped: Tally[str] = Tally()
        dead: Tally[str] = Tally()
        for message in messages:
            value = message.value or b""
            try:
                contract, event = source_mappings[message.topic].decode(value)
            except Skipped as exc:
                skipped[exc.reason] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a record must never stop the worker
                reason = exc.reason if isinstance(exc, BadEvent) else "unprocessable"
                if reason == "unprocessable":
                    app.log.exception("healthstream: source record could not be mapped")
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
                pending.append(
                    await send(
                        settings.dead_letter_topic,
                        letter.key,
                        letter.value,
                        None,
                        None,
                        letter.headers,
                    )
                )
                continue
            forwarded[(message.topic, event.type.value)] += 1
            headers = [("source_topic", message.topic.encode())]
            body = orjson.dumps(contract)
            if event.type is EventType.TICK:
                for partition in range(settings.partitions):
                    pending.append(
                        await send(settings.input_topic, None, body, partition, None, headers)
                    )
            else:
                key = event.account_id.encode()
                pending.append(await send(settings.input_topic, key, body, None, None, headers))
        await asyncio.gather(*pending)
        ack = app.consumer.ack
        for message in messages:
            ack(message)
        metrics.observe_sources(forwarded, skipped, dead)

    app.healthstream_source_handler = map_sources  # type: ignore[attr-defined]
    app.healthstream_source_topics = frozenset(source_mappings)  # type: ignore[attr-defined]
    app.healthstream_batch_handler = handle_batch  # type: ignore[attr-defined]
    app.healthstream_input_topic = settings.input_topic  # type: ignore[attr-defined]
    app.healthstream_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]

    @app.agent(source, name="score")
    async def subscribe(stream: Any) -> None:
        """Subscribes the group to the input topic; its records go to ``handle_batch``."""
        async for _ in stream:
            raise RuntimeError("input records must reach handle_batch, not the agent")

    if source_mappings:
        sources = app.topic(*source_mappings, key_serializer="raw", value_serializer="raw")

        @app.agent(sources, name="map")
        async def subscribe_sources(stream: Any) -> None:
            """Subscribes the group to the source topics; their records go to ``map_sources``."""
            async for _ in stream:
                raise RuntimeError("source records must reach map_sources, not the agent")

    if settings.tick_interval_s > 0:

        @app.timer(settings.tick_interval_s, on_leader=True)
        async def clock() -> None:
            """Append a wall-clock tick to every input partition, so silent accounts age."""
            tick = orjson.dumps({"type": "tick", "ts": int(time.time() * 1000)})
            for partition in range(settings.partitions):
                await source.send(value=tick, partition=partition)

    return app
