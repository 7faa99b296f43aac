"""Every reach into Faust's private API, in one place: read from faust-streaming 0.15.3.

The worker bends Faust at a few points, each for a measured reason, and each through a
private attribute or method that a Faust release may change. They are all here, with the
reason beside each, so that a Faust upgrade starts by reading this file (and running the
crash, failover and recovery tests):

- ``BatchConsumer`` and ``TunedConsumerThread``: input records a fetched batch at a time
  (Faust's per-record stream machinery caps a worker at about 10,000-14,000 events/s), a
  configurable fetch wait (Faust fixes it at 1.5 s), commit bookkeeping that counts each
  offset once (Faust's can stall a partition's commit after a rebalance), and an intake
  held closed from a rebalance until the seek that follows table recovery (Faust hands
  over records fetched before it).
- ``BatchRecovery`` and ``BatchTableManager``: table recovery a queue-full at a time (Faust's
  loop costs about 200 us per changelog event).
- ``BatchApp``: the app that makes them, and where the worker's handlers are given.
- Accessors for private state the worker reads: the memory store's key partitions, the
  RocksDB store's databases and keys, the recovery's progress, the aiokafka producer.

Input records reach the worker's handlers a fetched batch at a time. The handler owns
acknowledgement: it acks a batch's messages once the batch's outputs and changelog writes
are acknowledged by the broker, so a commit never covers an event whose effects could
still be lost. Records of every other topic (table changelogs during recovery) still take
Faust's own path.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service

BatchHandler = Callable[[list[Message]], Awaitable[None]]


@dataclass(frozen=True)
class BatchIntake:
    """Where the consumer hands what it fetches: the input topic's records to
    ``handle_batch``, the source topics' records to ``map_sources``."""

    input_topic: str
    handle_batch: BatchHandler
    source_topics: frozenset[str]
    map_sources: BatchHandler
    #: how long a fetch waits at the broker for data (Faust's own: 1,500 ms)
    fetch_max_wait_ms: int = 1500


class BatchApp(faust.App):
    """A Faust app whose consumer hands records over in batches, to ``intake``."""

    #: set by the worker before the app starts
    intake: BatchIntake | None = None

    def _new_transport(self) -> Any:
        # private hook: the only place Faust chooses its transport (and so its consumer)
        return BatchTransport(self.conf.broker_consumer, self)

    def _new_web(self) -> Any:
        # private hook: the only place Faust makes its web driver
        return self.adapt_web(super()._new_web())

    def adapt_web(self, web: Any) -> Any:
        """The web driver the app serves with (here: Faust's own)."""
        return web


def intake_of(app: Any) -> BatchIntake:
    """The handlers a ``BatchApp`` was given; a clear error when it was given none."""
    intake = cast(BatchApp, app).intake
    if intake is None:
        raise RuntimeError("the app's consumer was started before its handlers were given")
    return intake


def records_behind(
    partitions: list[TP],
    committed: Mapping[TP, int | None],
    fetched: Mapping[TP, int | None],
    probed: Mapping[TP, int],
) -> dict[tuple[str, int], int]:
    """Per partition, its end (the later of the fetched and the probed one) minus its
    committed offset, never below 0; a partition with no end known yet is left out."""
    lag: dict[tuple[str, int], int] = {}
    for tp in partitions:
        ends = [end for end in (fetched.get(tp), probed.get(tp)) if end is not None]
        if ends:
            lag[(tp.topic, tp.partition)] = max(max(ends) - (committed.get(tp) or 0), 0)
    return lag


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait (Faust fixes it at 1.5 s).

    A broker holds a fetch for up to this long when it has no new data, which bounds the
    latency of a quiet stream.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        # private hook: Faust builds aiokafka's consumer here, and passes it no fetch wait;
        # aiokafka keeps the wait in the private ``_fetch_max_wait_ms``
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = intake_of(self.app).fetch_max_wait_ms
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """A Faust consumer that delivers the input topic's records in fetched batches."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        # private hook: the only place Faust chooses its consumer thread's class
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    #: end offsets asked of the broker by ``probe_ends``, per partition
    probed_ends: dict[TP, int] | None = None

    def _watched(self) -> list[TP]:
        intake = intake_of(self.app)
        topics = {intake.input_topic, *intake.source_topics}
        return sorted(tp for tp in self.assignment() if tp.topic in topics)

    async def probe_ends(self) -> None:
        """Ask the brokers for the end offset of every assigned input and source partition.

        The highwater marks of fetches stop moving when the fetcher stalls; these do not,
        so a stalled fetcher shows as a growing lag rather than as none."""
        watched = self._watched()
        ends = await self.highwaters(*watched) if watched else {}
        self.probed_ends = {tp: int(end) for tp, end in ends.items() if end is not None}

    def input_lag(self) -> dict[tuple[str, int], int]:
        """Per assigned input and source partition, the records past the committed offset.

        Committed offsets are the last commit's; the end is the later of the last fetch's
        highwater mark and the last ``probe_ends`` answer: numbers Faust and aiokafka
        already hold, so the metrics server's thread can read them without a request.
        Faust records a commit at offset 0 as None, the same as none yet: both count from
        offset 0. A broker that reports an end short of the last record (Tansu: its last
        batch's first offset + 1) can make the difference negative: that reads as 0.
        """
        # Faust's last committed offsets, kept in the private ``_committed_offset``
        committed = self._committed_offset
        watched = self._watched()
        fetched = {tp: self.highwater(tp) for tp in watched}
        return records_behind(watched, committed, fetched, self.probed_ends or {})

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: one past the run of offsets done, acked or in a
        gap (offsets the log does not hold), that starts at the committed offset.

        Faust's own version keeps an offset that is both in a gap and acked as two entries,
        and its run of consecutive numbers ends at the first repeat. A fetch that raced a
        seek back notes the records it jumped over as a gap; when the same records are then
        acked, as the batches that applied them are flushed, every one of them is repeated,
        and the commit advanced one offset per commit interval: thousands of intervals,
        after a rebalance. Here each offset counts once.

        Overrides Faust's private ``_new_offset`` and reads its private bookkeeping
        (``_acked``, ``_acked_index``, ``_gap``, ``_committed_offset``), as in 0.15.3."""
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

    #: how many seeks to committed offsets have begun (see ``perform_seek``)
    seeks = 0
    #: whether input records may be applied: the tables hold every assigned partition's
    #: accounts and the partitions were sought to their committed offsets since the last
    #: rebalance. Faust resumes fetching before both (to read the changelogs); an input
    #: record fetched meanwhile comes from wherever the fetcher stood and would be applied
    #: to accounts half restored
    intake_open = False
    #: the consumer generation whose table recovery has completed (None: none since the
    #: last rebalance); set by ``BatchRecovery``
    recovered_generation: int | None = None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.intake_open, self.recovered_generation = False, None
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.intake_open, self.recovered_generation = False, None
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition to its committed offset; the first seek
        after the tables are recovered opens the intake (see ``intake_open``)."""
        self.seeks += 1
        await super().perform_seek()
        if self.recovered_generation == self.app.consumer_generation_id:
            self.intake_open = True

    async def _fetch_again(self, partitions: set[TP]) -> None:
        """Seek back partitions whose fetched records were dropped: every assigned partition
        to its committed offset (``perform_seek``), and these, if never committed, to their
        beginning. Records read again that were applied are skipped by the scorer."""
        assigned = self.assignment()
        if not assigned:
            return
        try:
            await self.perform_seek()
            for tp in partitions & assigned:
                if self._committed_offset.get(tp) is None:
                    await self.seek(tp, 0)
        except Exception as exc:  # noqa: BLE001 - a rebalance under way seeks again
            self.log.warning("healthstream: seeking back after a dropped fetch: %r", exc)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - via worker
        """Faust's private fetch loop (0.15.3), with its per-record delivery replaced by one
        call per fetched batch; read offsets, gaps and commits kept as Faust keeps them.
        Input records fetched while the intake was closed, or across a seek, are dropped
        unread: a seek to the committed offsets brings them again."""
        intake = intake_of(self.app)
        handler = intake.handle_batch
        input_topic = intake.input_topic
        map_sources = intake.map_sources
        source_topics = intake.source_topics
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
                seeks, was_open = self.seeks, self.intake_open
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    break
                fetched = [(tp, message) async for tp, message in ait]
                if not (was_open and self.intake_open and self.seeks == seeks):
                    dropped = {tp for tp, _ in fetched if tp.topic == input_topic}
                    if dropped:
                        fetched = [(tp, m) for tp, m in fetched if tp not in dropped]
                        await self._fetch_again(dropped)
                batch: list[Message] = []
                sources: list[Message] = []
                others: list[Message] = []
                for tp, message in fetched:
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
    """Faust's aiokafka transport, making ``BatchConsumer``s."""

    Consumer = BatchConsumer


#: the most changelog events taken from the queue in one go
RECOVERY_BATCH = 10_000


class BatchRecovery(Recovery):
    """Faust's recovery with a batched changelog loop (see the module's docstring)."""

    @Service.task
    async def _slurp_changelogs(self) -> None:  # pragma: no cover - via the worker
        """Faust's private recovery loop (0.15.3), a queue-full at a time; its buffers,
        offsets and timestamps (private attributes) kept as Faust keeps them."""
        queue: Any = self.tables.changelog_queue
        tp_to_table = self.tp_to_table
        buffers = self.buffers
        buffer_sizes = self.buffer_sizes
        while not self.should_stop:
            self.signal_recovery_end.clear()
            try:
                first = await asyncio.wait_for(queue.get(), timeout=5.0)
            except TimeoutError:
                if self.should_stop:
                    return
                self._end_if_recovered()
                continue
            events = [first]
            while len(events) < RECOVERY_BATCH:
                try:
                    events.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            now = monotonic()
            for event in events:
                tp = event.message.tp
                if tp in self.active_tps:
                    offsets = self.active_offsets
                    self._active_events_received_at[tp] = now
                    size_of = "recovery_buffer_size"
                elif tp in self.standby_tps:
                    offsets = self.standby_offsets
                    self._standby_events_received_at[tp] = now
                    size_of = "standby_buffer_size"
                else:
                    # a partition this worker no longer recovers (revoked meanwhile)
                    continue
                offset = event.message.offset
                seen = offsets.get(tp)
                if seen is not None and offset <= seen:
                    continue
                offsets[tp] = offset
                table = tp_to_table[tp]
                buffer = buffers[table]
                buffer.append(event)
                await table.on_changelog_event(event)
                size = buffer_sizes.get(tp)
                if size is None:
                    size = buffer_sizes[tp] = getattr(table, size_of)
                if len(buffer) >= size:
                    table.apply_changelog_batch(buffer)
                    buffer.clear()
                    self._last_flush_at = monotonic()
            self._last_active_event_processed_at = monotonic()
            self._end_if_recovered()
            if not self.tables.standbys_ready and not self.standby_remaining_total():
                self.tables.on_standbys_ready()

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's end of recovery, which seeks the input partitions to their committed
        offsets: that seek opens the consumer's intake (``BatchConsumer.intake_open``)."""
        consumer = self.app.consumer
        if self.app.consumer_generation_id == generation_id:
            cast(BatchConsumer, consumer).recovered_generation = generation_id
        await super().on_recovery_completed(generation_id)

    def _end_if_recovered(self) -> None:
        """Apply what the buffers hold and signal the end, once every partition is read
        (through Faust's private ``_set_recovery_ended``, as its own loop ends)."""
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            self.signal_recovery_end.set()


class BatchTableManager(TableManager):
    """Faust's table manager with ``BatchRecovery``."""

    @property
    def recovery(self) -> Recovery:
        # Faust makes its Recovery here, in the private ``_recovery``; the only way in
        if self._recovery is None:
            self._recovery = BatchRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


# -- private state the worker reads ----------------------------------------------------------


def memory_key_partition(table: Any) -> dict[bytes, int]:
    """The memory store's key -> partition index. Faust keeps it in the private
    ``_key_partition`` and fills it as changelog events are applied; the worker needs it to
    know which accounts a revoked partition held."""
    return cast(dict[bytes, int], table.data._key_partition)


def rocksdb_databases(table: Any) -> list[Any]:
    """The RocksDB store's open databases (private ``_dbs``), for its key-count estimate."""
    return list(table.data._dbs.values())


def rocksdb_get(store: Any, key: bytes) -> bytes | None:
    """A value straight from RocksDB (private ``_get``): the public ``__getitem__`` goes
    through Faust's table machinery and raises for a missing key."""
    return cast(bytes | None, store._get(key))


def rocksdb_keys(store: Any, partition: int) -> Iterable[bytes]:
    """The keys RocksDB holds for one partition (private ``_db_for_partition`` and
    ``_visible_keys``): Faust offers no public way to list a partition's keys."""
    return cast(Iterable[bytes], store._visible_keys(store._db_for_partition(partition)))


def rocksdb_put(store: Any, partition: int, key: bytes, value: bytes) -> None:
    """Write a snapshot to a partition's database and index its key (private
    ``_db_for_partition`` and ``_key_index``), as Faust's own changelog apply does, without
    sending it to the changelog again (the worker has already written it there)."""
    store._db_for_partition(partition).put(key, value)
    store._key_index[key] = partition


def recovery_progress(app: faust.App) -> tuple[bool, int]:
    """Whether the app's tables are recovering, and how many changelog records are left.
    The recovery lives in the table manager's private ``_recovery``, made when the worker
    starts; the public ``recovery`` property would make one early, on the wrong loop."""
    recovery = app.tables._recovery  # type: ignore[attr-defined]
    if recovery is None:
        raise LookupError("table recovery has not started yet")
    return bool(recovery.in_recovery), int(recovery.active_remaining_total())


def aiokafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's (private ``_ensure_producer``), to write whole
    record batches: Faust's ``send`` takes one record at a time."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def serve_web_with(web: Any, runner: Any) -> Any:
    """Faust's aiohttp web driver with another aiohttp runner (its private ``_runner``):
    the only way to change how it handles connections."""
    web._runner = runner
    return web
