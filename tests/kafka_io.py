"""Reading topics back in tests: plain aiokafka, no consumer group."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.settings import Settings


async def read_topic(
    bootstrap: str, topic: str, partitions: int, expect: int, timeout: float
) -> list[Any]:
    """Read records from the start until ``expect`` have arrived or ``timeout`` passes."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100)
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        # anything beyond the expected count would be a duplicate: look once more
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def read_outputs(
    bootstrap: str, topic: str, partitions: int, expect: int, timeout: float = 90
) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(bootstrap, topic, partitions, expect, timeout))
    return [orjson.loads(r.value) for r in records]


async def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"acct-bad")
    finally:
        await producer.stop()


async def read_until_quiet(
    bootstrap: str, topic: str, partitions: int, quiet_s: float = 3.0
) -> list[Any]:
    """Every record of the topic: read from the start until nothing new comes for ``quiet_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100)
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last_new = time.monotonic()
        while time.monotonic() - last_new < quiet_s:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                if batch:
                    records.extend(batch)
                    last_new = time.monotonic()
    finally:
        await consumer.stop()
    return records


def fresh_settings(bootstrap: str, prefix: str, **overrides: Any) -> Settings:
    """Settings with topics and a group no other test or earlier run on the broker uses."""
    run = uuid.uuid4().hex[:8]
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": f"hs-{prefix}-{run}",
        "input_topic": f"telemetry-{run}",
        "output_topic": f"scores-{run}",
        "dead_letter_topic": f"deadletter-{run}",
        "partitions": 4,
        "flush_interval_s": 0.5,
    }
    return Settings(**{**base, **overrides})


def records_in_kafka(records: list[dict[str, Any]], partitions: int = 4) -> int:
    """How many Kafka records a list of events becomes: a tick goes to every partition."""
    return sum(partitions if r["type"] == "tick" else 1 for r in records)
