"""Record batches per partition, written through the real Kafka protocol and read back."""

import asyncio
import random

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from kafka_io import read_topic

from stream.batches import KeyPartitioner, PartitionBatches
from stream.kafka import create_topics

pytestmark = pytest.mark.integration


def test_batches_keep_each_partitions_order_and_say_the_last_offsets(
    kafka_bootstrap: str, unique_topic
) -> None:
    topic = unique_topic("batches")
    # small batches, so that each partition's records span several of them
    records = [
        (i % 3, f"acct-{i % 50}".encode(), f"{i:06d}".encode() + b"x" * random.randint(10, 900))
        for i in range(3000)
    ]

    async def write() -> dict[tuple[str, int], int]:
        await create_topics(kafka_bootstrap, {topic: 3})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=16 * 1024)
        await producer.start()
        try:
            batches = PartitionBatches(producer)
            for partition, key, value in records:
                batches.add(topic, partition, key, value, [("n", value[:6])])
            assert batches.records == 3000
            written = await batches.deliver()
            assert await batches.deliver() == {}  # nothing left to send
            return written
        finally:
            await producer.stop()

    written = asyncio.run(write())
    back = asyncio.run(read_topic(kafka_bootstrap, topic, 3, 3000, 60))
    assert len(back) == 3000
    for partition in range(3):
        sent = [(k, v) for p, k, v in records if p == partition]
        got = sorted((r for r in back if r.partition == partition), key=lambda r: r.offset)
        assert [(r.key, r.value) for r in got] == sent
        assert [dict(r.headers)["n"] for r in got] == [v[:6] for _, v in sent]
        assert written[(topic, partition)] == got[-1].offset


def test_a_key_goes_where_kafkas_default_partitioner_sends_it(
    kafka_bootstrap: str, unique_topic
) -> None:
    topic = unique_topic("keys")

    async def check() -> None:
        await create_topics(kafka_bootstrap, {topic: 5})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            partitioner = KeyPartitioner()
            await partitioner.refresh(producer, topic)
            default = DefaultPartitioner()
            for i in range(500):
                key = f"acct-{i}".encode()
                expected = default(key, list(range(5)), list(range(5)))
                assert partitioner.partition(topic, key) == expected
                assert partitioner.partition(topic, key) == expected  # remembered
                meta = await (await producer.send(topic, b"v", key=key))
                assert meta.partition == expected
        finally:
            await producer.stop()

    asyncio.run(check())
