"""The batch consumer's commit bookkeeping and its intake, on a real Faust consumer object
(no broker: fetches and seeks are scripted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import faust
import pytest
from faust.types import TP

from stream.faust_internals import BatchConsumer, BatchIntake, BatchTransport

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


class _Fetcher:
    """What the drain loop reads of Faust's fetcher: whether it was told to stop."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


@dataclass(frozen=True)
class _Record:
    """The parts of a Faust message the drain loop reads."""

    topic: str
    partition: int
    offset: int


def _scripted_seeks(consumer: BatchConsumer, committed: int | None = 100) -> list[str]:
    """Seeks answered without a broker (``TOPIC`` committed at ``committed``); returns the
    list that records each seek made."""
    seeks: list[str] = []

    async def seek_to_committed() -> dict[TP, int | None]:
        seeks.append("committed")
        return {TOPIC: committed}

    async def seek(tp: TP, offset: int) -> None:
        seeks.append(f"{tp.partition}:{offset}")

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign,assignment]
    consumer._seek = seek  # type: ignore[method-assign]
    consumer.assignment = lambda: {TOPIC}  # type: ignore[method-assign]
    return seeks


def _open(consumer: BatchConsumer) -> None:
    """What the end of table recovery does: note the generation restored, then seek."""
    consumer.recovered_generation = consumer.app.consumer_generation_id
    consumer.loop.run_until_complete(consumer.perform_seek())


def _drain(
    consumer: BatchConsumer, fetches: list[list[int]], seek_during: frozenset[int] = frozenset()
) -> list[list[int]]:
    """Run the drain loop over scripted fetches of ``TOPIC`` offsets; returns the offsets
    each handed batch held (a seek begins during the fetches whose index is in
    ``seek_during``, as a rebalance's would)."""
    handed: list[list[int]] = []
    fetcher = _Fetcher()
    script = iter(enumerate(fetches))

    async def handle(batch: list[Any]) -> None:
        handed.append([m.offset for m in batch])

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        index, offsets = next(script, (-1, []))
        if index < 0:
            fetcher._stopped.set()
        if index in seek_during:
            consumer.seeks += 1
        for offset in offsets:
            yield TOPIC, _Record(TOPIC.topic, TOPIC.partition, offset)

    cast(Any, consumer.app).intake = BatchIntake(
        input_topic=TOPIC.topic,
        handle_batch=handle,
        source_topics=frozenset(),
        map_sources=handle,
    )
    consumer.getmany = getmany  # type: ignore[method-assign,assignment]
    consumer.loop.run_until_complete(consumer._drain_messages(fetcher))
    return handed


def test_records_fetched_before_the_intake_opens_are_dropped_and_fetched_again(
    consumer: BatchConsumer,
) -> None:
    # the input partition resumed before its seek: what comes is from the fetcher's old
    # position, over accounts still being restored
    seeks = _scripted_seeks(consumer)
    assert _drain(consumer, [[500, 501, 502]]) == []
    assert seeks == ["committed"]  # sought back to the committed offset
    assert consumer._read_offset[TOPIC] == 100  # and read from there
    assert not consumer.intake_open  # still closed: the tables are not restored yet


def test_records_are_handed_over_once_the_seek_after_recovery_opened_the_intake(
    consumer: BatchConsumer,
) -> None:
    _scripted_seeks(consumer)
    _open(consumer)
    assert consumer.intake_open
    assert _drain(consumer, [[100, 101], [102]]) == [[100, 101], [102]]


def test_a_fetch_overtaken_by_a_seek_is_dropped(consumer: BatchConsumer) -> None:
    seeks = _scripted_seeks(consumer)
    _open(consumer)
    handed = _drain(consumer, [[100, 101], [700, 701], [102]], seek_during=frozenset({1}))
    assert handed == [[100, 101], [102]]
    assert seeks == ["committed", "committed"]  # the opening seek, and the one after the drop


def test_a_rebalance_closes_the_intake_until_the_tables_are_restored(
    consumer: BatchConsumer,
) -> None:
    _scripted_seeks(consumer)
    _open(consumer)
    consumer.loop.run_until_complete(consumer.on_partitions_revoked(set()))
    assert not consumer.intake_open
    consumer.loop.run_until_complete(consumer.perform_seek())  # a seek before recovery ends
    assert not consumer.intake_open
    assert _drain(consumer, [[100]]) == []


def test_a_partition_never_committed_is_sought_to_its_start(consumer: BatchConsumer) -> None:
    seeks = _scripted_seeks(consumer, committed=None)
    assert _drain(consumer, [[40, 41]]) == []
    assert seeks == ["committed", "0:0"]
