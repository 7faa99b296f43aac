"""The Faust app: input topic → account table (changelog-backed) → score → output topic.

Records are taken from the input in batches. Each batch is scored by ``BatchScorer`` (every
event is applied and rescored), then each touched account's snapshot is written once to the
table and its changelog, score changes go to the output topic, and records that cannot be
applied go to the dead-letter topic with their reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from stream.settings import Settings
from stream.worker import BatchResult, BatchScorer, InputRecord, StrKeyedBytesStore

log = logging.getLogger("healthstream")


def build_engine(settings: Settings) -> HealthEngine:
    profile = load_profile(settings.profile_path)
    return HealthEngine(ScoringConfig(profile, settings.min_step))


def create_app(settings: Settings) -> faust.App:
    """Build the worker's Faust app from settings; ``faust.Worker`` runs it."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        table_standby_replicas=0,
    )
    engine = build_engine(settings)
    source = app.topic(
        settings.input_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    output = app.topic(settings.output_topic, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(
        settings.dead_letter_topic, key_serializer="raw", value_serializer="raw"
    )
    accounts = app.Table(
        "accounts",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
    )
    # the memory store keeps snapshot bytes (after recovery) or live AccountState objects
    store = StrKeyedBytesStore(accounts.data.data, accounts.data._key_partition)
    scorer = BatchScorer(engine, store, store.keys_in_partition)

    async def publish(result: BatchResult) -> None:
        for account_id, (partition, blob) in result.state_writes.items():
            key = account_id.encode()
            store.key_partition[key] = partition
            accounts.send_changelog(partition, key, blob, "raw", "raw")
        for account_id, out in result.outputs:
            await output.send(key=account_id.encode(), value=orjson.dumps(out))
        for dead in result.dead_letters:
            await dead_letters.send(
                value=dead.record.value or b"",
                headers=[
                    ("reason", dead.reason.encode()),
                    ("error", dead.message.encode()),
                    ("source_topic", settings.input_topic.encode()),
                    ("source_partition", str(dead.record.partition).encode()),
                    ("source_offset", str(dead.record.offset).encode()),
                ],
            )

    @app.agent(source, name="score")
    async def score(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
            records = [
                InputRecord(e.message.partition, e.message.offset, e.message.value) for e in events
            ]
            await publish(scorer.process(records))

    if settings.tick_interval_s > 0:

        @app.timer(settings.tick_interval_s, on_leader=True)
        async def clock() -> None:
            """Append a wall-clock tick to every input partition, so silent accounts age."""
            tick = orjson.dumps({"type": "tick", "ts": int(time.time() * 1000)})
            for partition in range(settings.partitions):
                await source.send(value=tick, partition=partition)

    app.healthstream_scorer = scorer  # type: ignore[attr-defined]
    return app
