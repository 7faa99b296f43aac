"""How far a worker's consumer group has committed on its input topic."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from stream import kafka
from stream.settings import Settings


async def committed_input_records(settings: Settings) -> int:
    """The sum over input partitions of the group's committed offsets."""
    probe = kafka.consumer(settings, group_id=settings.app_id, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(settings.input_topic, p) for p in range(settings.partitions)]
        return sum([(await probe.committed(tp)) or 0 for tp in tps])
    finally:
        await probe.stop()


async def wait_for_commits(settings: Settings, records: int, timeout: float) -> bool:
    """Wait until the group has committed ``records`` input records (all of a known input).

    Counting produced records rather than asking for end offsets: some brokers (Tansu
    0.6.0) report an end offset per batch, not per record.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await committed_input_records(settings) >= records:
            return True
        await asyncio.sleep(0.5)
    return False
