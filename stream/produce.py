"""Produce contract records to the input topic: keyed by account, ticks to every partition."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.broker import create_topics
from stream.settings import Settings


def topic_layout(settings: Settings) -> dict[str, int]:
    """Every topic the worker uses, with its partition count, to create up front."""
    changelog = f"{settings.app_id}-accounts-changelog"
    return {
        settings.input_topic: settings.partitions,
        changelog: settings.partitions,
        settings.output_topic: settings.partitions,
        settings.dead_letter_topic: 1,
    }


class TelemetryProducer:
    """Sends records without waiting for each acknowledgement; ``flush`` waits for all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, linger_ms=5, max_batch_size=256 * 1024
        )
        self.pending: list[asyncio.Future[Any]] = []
        #: source records sent, and the Kafka records they made (a tick goes to every partition)
        self.sent = 0
        self.records = 0

    async def __aenter__(self) -> TelemetryProducer:
        await create_topics(self.settings.bootstrap_servers, topic_layout(self.settings))
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self.producer.stop()

    async def send(self, record: dict[str, Any]) -> None:
        value = orjson.dumps(record)
        topic = self.settings.input_topic
        if record.get("type") == "tick":
            for partition in range(self.settings.partitions):
                self.pending.append(await self.producer.send(topic, value, partition=partition))
            self.records += self.settings.partitions
        else:
            key = str(record.get("account_id", "")).encode()
            self.pending.append(await self.producer.send(topic, value, key=key))
            self.records += 1
        self.sent += 1
        if len(self.pending) >= 10_000:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending)
            self.pending.clear()


async def produce_records(settings: Settings, records: Iterable[dict[str, Any]]) -> int:
    async with TelemetryProducer(settings) as producer:
        for record in records:
            await producer.send(record)
    return producer.sent
