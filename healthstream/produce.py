"""Produce contract records to the input topic: keyed by account, ticks to every partition."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream import kafka
from stream.settings import Settings
from stream.topics import create_worker_topics
from stream.topics import topic_layout as topic_layout  # where callers have imported it from

_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


class BadLine(ValueError):
    """A line of a file to produce that is not a JSON object; the message names the line."""


def check_lines(lines: Iterable[bytes], source: str) -> int:
    """How many records the lines hold (blank lines skipped); BadLine at the first line
    that is not a JSON object, so that a file is refused before anything is sent."""
    count = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadLine(
                f"{source}: line {lineno}, column {exc.colno}: not JSON ({exc.msg}); "
                "nothing was sent"
            ) from None
        if not isinstance(record, dict):
            raise BadLine(
                f"{source}: line {lineno}: a JSON {_JSON_KINDS.get(type(record), 'value')}, "
                "not an object; nothing was sent"
            )
        count += 1
    return count


def parse_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of lines that ``check_lines`` accepted."""
    return (orjson.loads(line) for line in lines if line.strip())


class TelemetryProducer:
    """Sends records without waiting for each acknowledgement; ``flush`` waits for all."""

    #: made when the context is entered, once the topics exist
    producer: AIOKafkaProducer

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pending: list[asyncio.Future[Any]] = []
        #: source records sent, and the Kafka records they made (a tick goes to every partition)
        self.sent = 0
        self.records = 0

    async def __aenter__(self) -> TelemetryProducer:
        await create_worker_topics(self.settings)
        # made only now: a producer that was never started still warns when collected
        self.producer = kafka.producer(self.settings, linger_ms=5, max_batch_size=256 * 1024)
        try:
            await self.producer.start()
        except BaseException:
            await self.producer.stop()
            raise
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
