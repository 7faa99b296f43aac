"""Taking input records from Faust's consumer in whole fetched batches.

Faust hands every record through its per-message stream machinery (a callback raced
against the flow-suspension event, a queue, a stream iterator), which caps a worker at
roughly 10,000-14,000 events/s before any work is done. ``BatchConsumer`` keeps Faust's
consumer, group membership, rebalancing, offsets and commits, but passes the records of
the input topic to one handler per fetched batch, and the records of source topics in
other shapes to the mapping handler. Records of every other topic (table changelogs
during recovery) still take Faust's own path.

The handler owns acknowledgement: it acks a batch's messages once the batch's outputs and
changelog writes are acknowledged by the broker, so a commit never covers an event whose
effects could still be lost.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

BatchHandler = Callable[[list[Message]], Awaitable[None]]


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait (Faust fixes it at 1.5 s).

    A broker holds a fetch for up to this long when it has no new data, which bounds the
    latency of a quiet stream.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = getattr(self.app, "healthstream_fetch_max_wait_ms", 1500)
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """A Faust consumer that delivers the input topic's records in fetched batches."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def input_lag(self) -> dict[int, int]:
        """Per assigned input partition, the records past the committed offset.

        End offsets are the highwater marks of the last fetch and committed offsets the
        last commit's: numbers aiokafka and Faust already hold, so the metrics server's
        thread can read them without a request. Faust records a commit at offset 0 as
        None, the same as none yet: both count from offset 0. A broker that reports an end
        short of the last record (Tansu: its last batch's first offset + 1) can make the
        difference negative: that reads as 0.
        """
        topic = cast(Any, self.app).healthstream_input_topic
        committed = self._committed_offset
        lag: dict[int, int] = {}
        for tp in self.assignment():
            if tp.topic != topic:
                continue
            end = self.highwater(tp)
            if end is not None:
                lag[tp.partition] = max(end - (committed.get(tp) or 0), 0)
        return lag

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: one past the run of offsets done, acked or in a
        gap (offsets the log does not hold), that starts at the committed offset.

        Faust's own version keeps an offset that is both in a gap and acked as two entries,
        and its run of consecutive numbers ends at the first repeat. A fetch that raced a
        seek back notes the records it jumped over as a gap; when the same records are then
        acked, as the batches that applied them are flushed, every one of them is repeated,
        and the commit advanced one offset per commit interval: thousands of intervals,
        after a rebalance. Here each offset counts once."""
        acked = self._acked[tp]
        if not acked:
            return None
        done = set(acked)
        top = max(done)
        gap = self._gap[tp]
        if gap:
            spans = gap.overlap(0, top)
            if spans:
                for span in spans:
                    done.update(range(span.begin, span.end))
                gap.chop(0, max(top + 1, max(span.end for span in spans)))
        ordered = sorted(done)
        committed = self._committed_offset[tp]
        if committed:
            ordered = ordered[bisect_left(ordered, committed) :]
            if not ordered or ordered[0] - committed > 1:
                acked[:] = ordered
                return None  # the next offset to commit is not done yet
        end = 1
        while end < len(ordered) and ordered[end] == ordered[end - 1] + 1:
            end += 1
        last = ordered[end - 1]
        self._acked_index[tp].difference_update(range(ordered[0], last + 1))
        acked[:] = ordered[end:]
        return last + 1

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - via worker
        app = cast(Any, self.app)
        handler: BatchHandler = app.healthstream_batch_handler
        input_topic: str = app.healthstream_input_topic
        map_sources: BatchHandler = app.healthstream_source_handler
        source_topics: frozenset[str] = app.healthstream_source_topics
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    break
                batch: list[Message] = []
                sources: list[Message] = []
                others: list[Message] = []

                async for tp, message in ait:
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read: a fetch that raced a seek
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if tp.topic == input_topic:
                        batch.append(message)
                    elif tp.topic in source_topics:
                        sources.append(message)
                    else:
                        others.append(message)
                    set_read_offset(tp, offset)
                if others:
                    # Faust's path (table changelogs), raced against a rebalance once per
                    # fetch rather than once per record: a race per record costs two tasks,
                    # which made table recovery crawl at a few thousand records/s
                    await self.wait_first(_deliver(callback, others), self.suspend_flow.wait())
                if sources and not self.suspend_flow.is_set():
                    await map_sources(sources)
                if batch and not self.suspend_flow.is_set():
                    # a rebalance suspends the flow: the batch is dropped unacked and its
                    # records are read again from the committed offsets afterwards
                    await handler(batch)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise


async def _deliver(callback: Callable[[Message], Awaitable[None]], messages: list[Message]) -> None:
    for message in messages:
        await callback(message)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
