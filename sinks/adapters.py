"""Adapters between the two sink contracts, so every destination serves replay and the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from scoring.outputs import OutputEvent
from sinks.base import AsyncSink, Sink


class ThreadedSink:
    """A synchronous sink for the worker: its calls run on one thread of its own.

    A slow disk or database then holds up only the batch being written, never the event
    loop, and the single thread keeps the sink's calls in order and never concurrent. Each
    batch is delivered event by event, then flushed: one file flush or one transaction.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthstream-sink")
        self._closed = False

    async def deliver_batch(self, events: Sequence[OutputEvent]) -> None:
        if events:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._write, list(events))

    def _write(self, events: list[OutputEvent]) -> None:
        for event in events:
            self.sink.deliver(event["account_id"], event)
        self.sink.flush()

    async def drain(self) -> None:
        """Nothing to wait for: ``deliver_batch`` returns after the batch is flushed."""

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self.sink.close)
        finally:
            self._thread.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"ThreadedSink({self.sink!r})"


class BlockingSink:
    """An asynchronous sink driven from synchronous code, such as ``healthstream replay``.

    Events are handed over ``batch_size`` at a time on a private event loop, and each
    flush waits until the handed-over events are delivered (or given up by the sink), so
    the calling loop never runs ahead of the destination by more than one batch.
    """

    def __init__(self, sink: AsyncSink, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        self.sink = sink
        self.batch_size = batch_size
        self._pending: list[OutputEvent] = []
        self._runner = asyncio.Runner()

    def deliver(self, key: str, event: OutputEvent) -> None:
        self._pending.append(event)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._runner.run(self._hand_over(batch))

    async def _hand_over(self, batch: list[OutputEvent]) -> None:
        await self.sink.deliver_batch(batch)
        await self.sink.drain()

    def close(self) -> None:
        try:
            self.flush()
            self._runner.run(self.sink.aclose())
        finally:
            self._runner.close()

    def __repr__(self) -> str:
        return f"BlockingSink({self.sink!r}, batch_size={self.batch_size})"
