"""The broker fixture and the embedded broker."""

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.broker import EmbeddedBroker, create_topics, docker_engine_available


def test_docker_probe_answers_quickly() -> None:
    started = time.monotonic()
    assert isinstance(docker_engine_available(), bool)
    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_topics_keep_their_partition_count_and_records_round_trip(kafka_bootstrap: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"

    async def run() -> list[tuple[bytes, bytes]]:
        await create_topics(kafka_bootstrap, {topic: 4})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(8):
                await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            assert topic in await consumer.topics()  # refreshes metadata
            assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
            tps = [TopicPartition(topic, p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: list[tuple[bytes, bytes]] = []
            deadline = time.monotonic() + 20
            while len(got) < 8 and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend((r.key, r.value) for r in batch)
            return got
        finally:
            await consumer.stop()

    got = asyncio.run(run())
    assert sorted(got) == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(8)]


@pytest.mark.integration
def test_embedded_broker_starts_again_after_a_stop() -> None:
    for _ in range(2):
        with EmbeddedBroker() as broker:
            asyncio.run(create_topics(broker.bootstrap, {"probe": 2}))
        assert broker.proc is not None and broker.proc.poll() is not None
