"""Records written a whole batch per partition at a time, not one ``send`` per record.

aiokafka's ``send`` costs tens of microseconds a record (a metadata wait, the partitioner,
a future and a callback per record), which at one output and one changelog write per
event is as much as scoring the event. A worker knows all it will write after a batch of
input: it fills one record batch per topic partition and hands each to the producer with
``send_batch``, one future per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

Headers = Sequence[tuple[str, bytes]]


class KeyPartitioner:
    """Kafka's default partitioner for keyed records (murmur2 of the key, modulo the topic's
    partitions), remembered per key: a worker writes the same accounts again and again."""

    def __init__(self) -> None:
        self._topics: dict[str, tuple[int, dict[bytes, int]]] = {}

    async def refresh(self, producer: AIOKafkaProducer, topic: str) -> None:
        """Read the topic's partition count from the producer's metadata (a new count, for
        example after the topic was given more partitions, starts a new memory)."""
        count = len(await producer.partitions_for(topic))
        known = self._topics.get(topic)
        if known is None or known[0] != count:
            self._topics[topic] = (count, {})

    def partition(self, topic: str, key: bytes) -> int:
        count, memory = self._topics[topic]
        found = memory.get(key)
        if found is None:
            found = memory[key] = (murmur2(key) & 0x7FFFFFFF) % count
        return found


class PartitionBatches:
    """Records gathered per topic partition, then sent as record batches.

    ``add`` is plain Python (no await), so a loop over a batch's outputs stays tight; a
    batch that fills up is set aside and a new one started. ``deliver`` sends them all,
    waits for every acknowledgement, and says the last offset written per partition.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self.records = 0

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            builder.close()
            self._full.append((topic, partition, builder))
            builder = self._open[slot] = self.producer.create_batch()
            # an empty batch takes any one record: a record too large for Kafka fails
            # when the broker refuses it, as it would through ``send``
            builder.append(timestamp=None, key=key, value=value, headers=headers)
        self.records += 1

    async def deliver(self) -> dict[tuple[str, int], int]:
        """Send every batch and wait for all of them; the last offset per (topic, partition).

        A failed write raises, as ``send``'s future would: nothing after it is acknowledged."""
        batches = self._full + [(t, p, b) for (t, p), b in self._open.items()]
        self._full, self._open = [], {}
        if not batches:
            return {}
        sent = []
        for topic, partition, builder in batches:
            builder.close()
            count = builder.record_count()
            future = await self.producer.send_batch(builder, topic, partition=partition)
            sent.append((topic, partition, count, future))
        metas = await asyncio.gather(*(future for *_, future in sent))
        last: dict[tuple[str, int], int] = {}
        for (topic, partition, count, _), meta in zip(sent, metas, strict=True):
            end = -1 if meta is None else meta.offset + count - 1
            last[(topic, partition)] = max(end, last.get((topic, partition), -1))
        return last
