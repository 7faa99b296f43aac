"""What the page shows, as plain data: the book's query and rows, an account, the alerts.

The JSON API serialises these objects as they are (``orjson`` writes dataclasses), and the
HTML pages are rendered from the same objects, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: the zones an account can be in, worst first, with the words the page uses for them
ZONES = ("critical", "at_risk", "onboarding", "healthy")
ZONE_LABELS = {
    "critical": "critical",
    "at_risk": "at risk",
    "onboarding": "onboarding",
    "healthy": "healthy",
}
SEVERITIES = ("red", "yellow", "monitor")

#: the book's columns a reader can sort on; "risk" is the lowest score, then the biggest fall
SORTS = (
    "risk",
    "account",
    "score",
    "zone",
    "change_7d",
    "change_30d",
    "reason",
    "action",
    "changed",
)
PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_SEARCH = 200
#: an account page lists this many outputs, then links to the older ones
CHANGES_PER_PAGE = 50
ALERTS_PER_PAGE = 50


@dataclass(frozen=True)
class ZoneBands:
    """Where the zones begin, as (at risk from, healthy from): the profile's, or a
    segment's own when the profile gives it one. The charts draw them."""

    default: tuple[float, float] = (40.0, 75.0)
    segments: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, segment: str | None) -> tuple[float, float]:
        return self.segments.get(segment or "", self.default)


class QueryError(ValueError):
    """A query parameter the page cannot use; the message names it."""


@dataclass(frozen=True)
class BookQuery:
    """Which accounts of the book to list, in which order, and which page of them."""

    zone: str | None = None
    segment: str | None = None
    search: str = ""
    sort: str = "risk"
    order: str = "asc"
    page: int = 1
    per: int = PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query with ``changes``, without its defaults."""
        q = replace(self, **changes)
        shown = {
            "zone": q.zone or "",
            "segment": q.segment or "",
            "q": q.search,
            "sort": "" if q.sort == "risk" else q.sort,
            "order": "" if q.order == "asc" else q.order,
            "page": "" if q.page == 1 else str(q.page),
            "per": "" if q.per == PER_PAGE else str(q.per),
        }
        return {k: v for k, v in shown.items() if v}


@dataclass(frozen=True)
class AlertQuery:
    """Which alerts to list, newest first."""

    severity: str | None = None
    alert: str | None = None
    page: int = 1
    per: int = ALERTS_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    def params(self, **changes: Any) -> dict[str, str]:
        q = replace(self, **changes)
        shown = {
            "severity": q.severity or "",
            "alert": q.alert or "",
            "page": "" if q.page == 1 else str(q.page),
            "per": "" if q.per == ALERTS_PER_PAGE else str(q.per),
        }
        return {k: v for k, v in shown.items() if v}


def _one(params: Mapping[str, str], name: str) -> str:
    return params.get(name, "").strip()


def _whole(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    text = _one(params, name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{name}: expected a whole number, got {text[:40]!r}") from None
    if not 1 <= value <= top:
        raise QueryError(f"{name}: must be from 1 to {top:,}, got {value:,}")
    return value


def book_query(params: Mapping[str, str]) -> BookQuery:
    """The book query of a request's parameters: ``zone``, ``segment``, ``q``, ``sort``,
    ``order``, ``page`` and ``per``; an unknown zone, sort or order is refused."""
    zone = _one(params, "zone") or None
    if zone is not None and zone not in ZONES:
        raise QueryError(f"zone: one of {', '.join(ZONES)}, got {zone[:40]!r}")
    sort = _one(params, "sort") or "risk"
    if sort not in SORTS:
        raise QueryError(f"sort: one of {', '.join(SORTS)}, got {sort[:40]!r}")
    order = _one(params, "order") or "asc"
    if order not in ("asc", "desc"):
        raise QueryError(f"order: asc or desc, got {order[:40]!r}")
    search = _one(params, "q")
    if len(search) > MAX_SEARCH:
        raise QueryError(f"q: at most {MAX_SEARCH} characters, got {len(search):,}")
    return BookQuery(
        zone=zone,
        segment=_one(params, "segment") or None,
        search=search,
        sort=sort,
        order=order,
        page=_whole(params, "page", 1, 10_000_000),
        per=_whole(params, "per", PER_PAGE, MAX_PER_PAGE),
    )


def alert_query(params: Mapping[str, str]) -> AlertQuery:
    """The alert query of a request's parameters: ``severity``, ``alert``, ``page``, ``per``."""
    severity = _one(params, "severity") or None
    if severity is not None and severity not in SEVERITIES:
        raise QueryError(f"severity: one of {', '.join(SEVERITIES)}, got {severity[:40]!r}")
    alert = _one(params, "alert") or None
    if alert is not None and len(alert) > MAX_SEARCH:
        raise QueryError(f"alert: at most {MAX_SEARCH} characters")
    return AlertQuery(
        severity=severity,
        alert=alert,
        page=_whole(params, "page", 1, 10_000_000),
        per=_whole(params, "per", ALERTS_PER_PAGE, MAX_PER_PAGE),
    )


def changes_cursor(params: Mapping[str, str]) -> int | None:
    """``before``: list an account's outputs older than this seq (the next page)."""
    text = _one(params, "before")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise QueryError(f"before: expected a seq, got {text[:40]!r}") from None


@dataclass(frozen=True)
class ScorePoint:
    """An account's score from ``time`` on (the outputs' ``event_time``, ISO-8601)."""

    time: str
    score: int
    zone: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class BookRow:
    """One account in the book: where it stands, how it moved, why, and what to do."""

    account_id: str
    score: int | None
    zone: str | None
    #: the score now less the score 7 (30) days before the book's time; None: no score then
    change_7d: int | None
    change_30d: int | None
    #: (time, score) over the 90 days to the book's time, the first at the window's start
    sparkline: list[tuple[str, int]]
    reason: str | None
    action: str | None
    segment: str | None
    #: when the score last changed (its newest ``score_changed``)
    changed_at: str | None
    #: the newest output's time and seq
    event_time: str | None
    seq: int


@dataclass(frozen=True)
class BookPage:
    """A page of the book, with the counts per zone of the accounts the filters leave."""

    as_of: str | None
    query: BookQuery
    total: int
    pages: int
    zones: dict[str, int]
    segments: list[str]
    accounts: list[BookRow]


@dataclass(frozen=True)
class Facts:
    """What the newest outputs say of the account: its segment, renewal and champion."""

    segment: str | None = None
    renewal_date: str | None = None
    #: days from the output's ``as_of`` to the renewal, and that day
    days_to_renewal: int | None = None
    renewal_seen: str | None = None
    champion: str | None = None
    #: responsive, silent or departed
    champion_status: str | None = None
    champion_last_seen: str | None = None
    champion_seen: str | None = None


@dataclass(frozen=True)
class AccountPage:
    """An account: its standing, its score over time, its outputs newest first, its alerts."""

    account_id: str
    score: int | None
    zone: str | None
    action: str | None
    reason: str | None
    changed_at: str | None
    event_time: str | None
    seq: int
    facts: Facts
    scores: list[ScorePoint]
    #: its outputs (score changes and overrides, as stored), newest first
    changes: list[dict[str, Any]]
    #: pass as ``before`` for the next, older page of outputs; None: no older ones
    older: int | None
    alerts: list[dict[str, Any]]


@dataclass(frozen=True)
class AlertCount:
    severity: str | None
    alert: str | None
    count: int


@dataclass(frozen=True)
class AlertsPage:
    """A page of alerts, newest first, and how many there are of each kind and severity."""

    query: AlertQuery
    total: int
    pages: int
    counts: list[AlertCount]
    alerts: list[dict[str, Any]] = field(default_factory=list)


def pages_of(total: int, per: int) -> int:
    return max(1, -(-total // per))


def facts_from(outputs: Iterable[Mapping[str, Any]], segment: str | None) -> Facts:
    """The account's facts from its outputs, newest first: the newest evidence that names a
    renewal date, and the newest that names the champion or says the champion departed."""
    renewal: dict[str, Any] = {}
    champion: dict[str, Any] = {}
    for out in outputs:
        seen = out.get("as_of") or out.get("event_time")
        for found in _dicts(out):
            if not renewal and isinstance(found.get("renewal_date"), str):
                days = found.get("days_to_renewal")
                renewal = {
                    "renewal_date": found["renewal_date"],
                    "days_to_renewal": days if isinstance(days, int) else None,
                    "renewal_seen": seen,
                }
            if champion:
                continue
            if found.get("champion_departed") is True:
                champion = {"champion_status": "departed", "champion_seen": seen}
            elif isinstance(found.get("champion"), str) and isinstance(found.get("status"), str):
                last = found.get("last_seen")
                champion = {
                    "champion": found["champion"],
                    "champion_status": found["status"],
                    "champion_last_seen": last if isinstance(last, str) else None,
                    "champion_seen": seen,
                }
        if renewal and champion:
            break
    return Facts(segment=segment, **renewal, **champion)


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    """Every object nested in an output, itself first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
