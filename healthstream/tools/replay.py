"""The scoring core over a file of records, with no broker: what ``healthstream replay`` runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from scoring.book import AccountBook
from scoring.engine import HealthEngine
from scoring.feed import Outcome, feed
from sinks.base import Sink
from telemetry.codec import BadEvent, decode_event
from telemetry.limits import check_kept_texts
from windows.telemetry import TelemetryEvent


@dataclass
class ReplayStats:
    records: int = 0
    events: int = 0
    ticks: int = 0
    #: events whose id the account had just seen: counted, not applied
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def replay(
    lines: Iterable[bytes],
    engine: HealthEngine,
    sink: Sink,
    on_reject: Callable[[int, BadEvent], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[AccountBook, ReplayStats]:
    """Apply every line of the event contract in order (blank lines are skipped)."""
    return replay_events(_decoded(lines), engine, sink, on_reject, on_progress)


def _decoded(lines: Iterable[bytes]) -> Iterator[tuple[int, TelemetryEvent | BadEvent]]:
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            event = decode_event(line)
            check_kept_texts(event)  # as the worker refuses them
        except BadEvent as exc:
            yield lineno, exc
            continue
        yield lineno, event


def replay_events(
    records: Iterable[tuple[int, TelemetryEvent | BadEvent]],
    engine: HealthEngine,
    sink: Sink,
    on_reject: Callable[[int, BadEvent], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[AccountBook, ReplayStats]:
    """Apply decoded records ``(row, event or BadEvent)`` in order; a tick advances every
    account seen so far. The sink is closed at the end."""
    book = AccountBook(engine)
    stats = ReplayStats()
    for lineno, event in records:
        stats.records += 1
        if isinstance(event, BadEvent):
            stats.rejected[event.reason] += 1
            if on_reject is not None:
                on_reject(lineno, event)
            continue
        fed = feed(book, event)
        if fed.outcome is Outcome.DUPLICATE:
            stats.duplicates += 1
            continue
        if fed.outcome is Outcome.TOO_OLD:
            stats.rejected["too_old"] += 1
            if on_reject is not None:
                on_reject(lineno, BadEvent("too_old", fed.error))
            continue
        if fed.outcome is Outcome.TICKED:
            stats.ticks += 1
        else:
            stats.events += 1
        for account_id, out in fed.outputs:
            sink.deliver(account_id, out)
        if on_progress is not None and stats.records % 4096 == 0:
            on_progress(stats.records)
    sink.close()
    return book, stats
