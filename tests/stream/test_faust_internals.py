"""The batch consumer's commit bookkeeping, on a real Faust consumer object (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.types import TP

from stream.faust_internals import BatchConsumer, BatchTransport

TOPIC = TP("telemetry", 0)


async def _noop(*_: object, **__: object) -> None:
    return None


@pytest.fixture
def consumer() -> Iterator[BatchConsumer]:
    loop = asyncio.new_event_loop()
    app = faust.App("intake-bookkeeping", broker="kafka://localhost:9092", loop=loop)
    transport = BatchTransport(app.conf.broker[0], app, loop=loop)
    made = BatchConsumer(
        transport,
        callback=_noop,
        on_partitions_revoked=_noop,
        on_partitions_assigned=_noop,
        loop=loop,
    )
    yield made
    made._thread.thread_loop.close()  # the consumer thread's own loop, never started here
    loop.close()


def _gap(consumer: BatchConsumer, *span: int) -> None:
    consumer.loop.run_until_complete(consumer._add_gap(TOPIC, *span))


def _ack(consumer: BatchConsumer, offsets: range) -> None:
    """What ``Consumer.ack`` records for each offset (bypassing the message objects)."""
    for offset in offsets:
        consumer._acked_index[TOPIC].add(offset)
        consumer._acked[TOPIC].append(offset)


def _commits_to_reach(consumer: BatchConsumer, end: int, most: int = 1000) -> int:
    """How many commits the bookkeeping needs before it offers ``end``."""
    for n in range(1, most + 1):
        offset = consumer._new_offset(TOPIC)
        assert offset is not None, f"stuck at {consumer._committed_offset[TOPIC]}"
        consumer._committed_offset[TOPIC] = offset
        if offset >= end:
            return n
    return most + 1


def test_a_gap_over_records_acked_later_does_not_slow_the_commit(consumer: BatchConsumer) -> None:
    # a fetch that raced a seek back jumps from 1,000 to 6,000, so 1,001..6,000 are noted as
    # a gap; the same records are then acked, as the batches that applied them are flushed
    consumer._committed_offset[TOPIC] = 1_000
    _gap(consumer, 1_001, 6_000)
    _ack(consumer, range(1_000, 8_000))
    # Faust's own bookkeeping offered one offset more per commit here: 5,000 commits,
    # hours at a commit every 2.8 s
    assert _commits_to_reach(consumer, 8_000) == 1


def test_the_commit_stops_at_the_first_offset_not_acked(consumer: BatchConsumer) -> None:
    consumer._committed_offset[TOPIC] = 10
    _ack(consumer, range(10, 20))
    _ack(consumer, range(25, 30))
    assert consumer._new_offset(TOPIC) == 20
    consumer._committed_offset[TOPIC] = 20
    assert consumer._new_offset(TOPIC) is None  # 20..24 are not acked yet
    _ack(consumer, range(20, 25))
    assert consumer._new_offset(TOPIC) == 30


def test_a_gap_of_offsets_the_log_does_not_hold_is_committed_past(
    consumer: BatchConsumer,
) -> None:
    # offsets 104..109 do not exist (compacted away, or transaction markers)
    consumer._committed_offset[TOPIC] = 100
    _ack(consumer, range(100, 104))
    _gap(consumer, 104, 109)
    _ack(consumer, range(110, 120))
    assert consumer._new_offset(TOPIC) == 120
