"""One record into the book: the loop every consumer of the log shares.

The worker, ``healthstream replay``, ``explain`` and the backtest all read a log of events
and ticks in order; each hands every record to ``feed``, which applies it and says what
came of it. So they cannot differ in what a tick advances, which repeats are dropped, or
what an event too old for the windows does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from scoring.book import AccountBook, AlreadyApplied, Output
from scoring.engine import DuplicateEvent, EventTooOld
from windows.telemetry import EventType, TelemetryEvent

__all__ = ["Fed", "Outcome", "feed"]


class Outcome(StrEnum):
    """What became of a record fed to the book."""

    #: an event applied to its account (its outputs, if any, emitted)
    APPLIED = "applied"
    #: a tick: the accounts it reached were advanced to its time
    TICKED = "ticked"
    #: an event whose id the account had already applied: dropped
    DUPLICATE = "duplicate"
    #: a record at or before the account's log position: read again, already applied
    ALREADY_APPLIED = "already_applied"
    #: an event older than the account's windows cover: not applied
    TOO_OLD = "too_old"


#: nothing touched, nothing emitted (shared: most records emit nothing)
_NONE: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class Fed:
    """A record's outcome, what it emitted as (account id, output) pairs in order, and the
    accounts whose state it changed; ``error`` says why an event was not applied."""

    outcome: Outcome
    outputs: tuple[tuple[str, Output], ...] | list[tuple[str, Output]] = _NONE
    touched: tuple[str, ...] | list[str] = _NONE
    error: str = ""


def feed(
    book: AccountBook,
    event: TelemetryEvent,
    position: tuple[int, int] | None = None,
    tick_accounts: Iterable[str] | None = None,
) -> Fed:
    """Apply one record, read at ``position`` (partition, offset) of the input log if it
    has one. A tick advances ``tick_accounts`` (default: every account in the book)."""
    if event.type is EventType.TICK:
        accounts = list(book.states) if tick_accounts is None else tick_accounts
        outputs, advanced = book.tick(event.ts_ms, accounts)
        return Fed(Outcome.TICKED, outputs, advanced)
    try:
        emitted = book.apply(event, position)
    except AlreadyApplied:
        return Fed(Outcome.ALREADY_APPLIED)
    except DuplicateEvent:
        return Fed(Outcome.DUPLICATE)
    except EventTooOld as exc:
        return Fed(Outcome.TOO_OLD, error=str(exc))
    if not emitted:
        return Fed(Outcome.APPLIED, touched=(event.account_id,))
    account_id = event.account_id
    return Fed(Outcome.APPLIED, [(account_id, out) for out in emitted], (account_id,))
