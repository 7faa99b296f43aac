"""The ``Sink`` interface and the sinks that need no network: a JSONL stream and memory."""

from __future__ import annotations

from typing import IO, Any, Protocol

import orjson


class Sink(Protocol):
    """Where output events go. ``deliver`` takes events in order; ``close`` flushes."""

    def deliver(self, key: str, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One JSON object per line, to a binary stream (a file or standard output)."""

    def __init__(self, stream: IO[bytes], close_stream: bool = False) -> None:
        self.stream = stream
        self.close_stream = close_stream
        self.delivered = 0

    def deliver(self, key: str, event: dict[str, Any]) -> None:
        self.stream.write(orjson.dumps(event) + b"\n")
        self.delivered += 1

    def close(self) -> None:
        self.stream.flush()
        if self.close_stream:
            self.stream.close()


class MemorySink:
    """Keeps events in a list, for tests and for in-process consumers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def deliver(self, key: str, event: dict[str, Any]) -> None:
        self.events.append((key, event))

    def close(self) -> None:
        return None
