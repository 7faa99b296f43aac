"""The sink interfaces and the sinks that need no network: JSONL streams, a JSONL file, memory.

Two contracts, one per caller. ``Sink`` is synchronous, for ``healthstream replay`` and
anything else that runs the core in a plain loop. ``AsyncSink`` is for the asyncio worker:
it takes a batch of outputs at a time and never blocks the event loop. ``sinks.adapters``
turns either kind into the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

from scoring.outputs import OutputEvent


class Sink(Protocol):
    """Where output events go, from synchronous code.

    ``deliver`` takes events in order and may buffer them; ``flush`` makes everything
    delivered so far durable (one file flush, one database transaction); ``close``
    flushes and releases the destination.
    """

    def deliver(self, key: str, event: OutputEvent) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class AsyncSink(Protocol):
    """Where output events go, from the asyncio worker.

    ``deliver_batch`` returns once the sink has accepted the events (written them, or
    queued them for delivery); ``drain`` returns once every accepted event is delivered
    or handed to the sink's failure handling; ``aclose`` drains and releases.
    """

    async def deliver_batch(self, events: Sequence[OutputEvent]) -> None: ...

    async def drain(self) -> None: ...

    async def aclose(self) -> None: ...


def redact_url(url: str) -> str:
    """The URL without password, query or fragment, which may hold credentials: for logs."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}@{host}" if at else host
    if "://" in url:
        shown = f"{parts.scheme}://{netloc}{parts.path}"
    else:
        shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + ("?…" if parts.query else "")


class JsonlSink:
    """One JSON object per line, to a binary stream (a file or standard output)."""

    def __init__(self, stream: IO[bytes], close_stream: bool = False) -> None:
        self.stream = stream
        self.close_stream = close_stream
        self.delivered = 0

    def deliver(self, key: str, event: OutputEvent) -> None:
        self.stream.write(orjson.dumps(event) + b"\n")
        self.delivered += 1

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()
        if self.close_stream:
            self.stream.close()


class JsonlFileSink(JsonlSink):
    """Appends one JSON object per line to a file; with ``fsync``, each flush reaches the disk.

    Appending keeps what earlier runs wrote, so a worker restart continues the same file.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        try:
            stream = open(self.path, "ab")
        except OSError as exc:
            raise OSError(f"{self.path}: cannot open the JSONL file: {exc.strerror}") from exc
        super().__init__(stream, close_stream=True)
        self.fsync = fsync

    def flush(self) -> None:
        self.stream.flush()
        if self.fsync:
            os.fsync(self.stream.fileno())

    def __repr__(self) -> str:
        return f"JsonlFileSink({str(self.path)!r}, fsync={self.fsync})"


class MemorySink:
    """Keeps events in a list, for tests and for in-process consumers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, OutputEvent]] = []

    def deliver(self, key: str, event: OutputEvent) -> None:
        self.events.append((key, event))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class FanOutSink:
    """Delivers every event to each of several sinks in turn, e.g. stdout and a history."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def deliver(self, key: str, event: OutputEvent) -> None:
        for sink in self.sinks:
            sink.deliver(key, event)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def __repr__(self) -> str:
        return f"FanOutSink{self.sinks!r}"
