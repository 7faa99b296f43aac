"""Read-only queries over a score history (``sinks.history``): SQLite or PostgreSQL.

The book reads ``score_accounts`` (one row per account), so a page costs the same for 300
accounts as for 100,000: the filters, the sort and the page are SQL over its indexes, and
only the page's accounts are then looked up in ``score_history`` for their change over 7
and 30 days and their 90-day sparkline (one index seek each, ``score_history_scores``).

The database is opened read-only: SQLite with ``mode=ro`` and ``query_only``, PostgreSQL
in read-only transactions. Each thread that queries gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from healthstream.dashboard.book import (
    CHANGES_PER_PAGE,
    AccountPage,
    AlertCount,
    AlertQuery,
    AlertsPage,
    BookPage,
    BookQuery,
    BookRow,
    ScorePoint,
    facts_from,
    pages_of,
)
from sinks.base import redact_url
from sinks.history import POSTGRESQL_FIELD, SQLITE_FIELD, SUMMARY, TABLE, HistoryError, store_of

SPARK_DAYS = 90
#: the most points of an account's score the account page draws (its newest)
MAX_POINTS = 5000
_ZONE_RANK = (
    "CASE a.zone WHEN 'critical' THEN 0 WHEN 'at_risk' THEN 1 WHEN 'onboarding' THEN 2"
    " WHEN 'healthy' THEN 3 ELSE 4 END"
)
_SUMMARY_COLUMNS = (
    "a.account_id, a.seq, a.score, a.zone, a.event_time, a.action, a.changed_at, a.segment,"
    " a.reason"
)


class _Dialect:
    """What differs between the two stores' SQL: placeholders, JSON fields, times, LIKE."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mark = "?" if name == "sqlite" else "%s"
        self.field = SQLITE_FIELD if name == "sqlite" else POSTGRESQL_FIELD
        # SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does the same
        self.like = "LIKE" if name == "sqlite" else "ILIKE"

    def time(self, value: datetime) -> Any:
        """A time parameter: ISO text as the engine writes it (SQLite compares text), or a
        datetime (PostgreSQL's timestamptz)."""
        if self.name == "sqlite":
            return value.astimezone(UTC).isoformat(timespec="milliseconds")
        return value

    @staticmethod
    def text_time(value: Any) -> str | None:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat(timespec="milliseconds")
        return value if isinstance(value, str) else None

    @staticmethod
    def payload(value: Any) -> dict[str, Any]:
        loaded = orjson.loads(value) if isinstance(value, str | bytes) else value
        return loaded if isinstance(loaded, dict) else {}

    def score_at(self, alias: str = "a") -> str:
        """An account's score at a time (one placeholder): its newest output's then."""
        m = self.mark
        return (
            f"(SELECT h.score FROM {TABLE} h WHERE h.account_id = {alias}.account_id"
            f" AND h.event_time <= {m} ORDER BY h.event_time DESC, h.seq DESC LIMIT 1)"
        )


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class HistoryReader:
    """The dashboard's queries over one history store, opened read-only."""

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        store, where = store_of(url)
        self.dialect = _Dialect(store)
        self._connect: Callable[[], Any] = (
            self._sqlite(where) if store == "sqlite" else self._postgresql(where)
        )
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._check()

    # -- connections ------------------------------------------------------------------------

    def _sqlite(self, path: str) -> Callable[[], Any]:
        file = Path(path)
        if path == ":memory:" or not file.is_file():
            raise HistoryError(f"{self.url}: no such history file ({path})")
        uri = f"{file.absolute().as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            # read through the OS page cache rather than copy pages into each connection
            conn.execute("PRAGMA mmap_size = 1073741824")
            return conn

        return connect

    def _postgresql(self, url: str) -> Callable[[], Any]:
        try:
            import psycopg
        except ImportError as exc:
            raise HistoryError(
                f"{self.url}: PostgreSQL needs the psycopg driver (pip install 'psycopg[binary]')"
            ) from exc

        def connect() -> Any:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            return conn

        return connect

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._opened.append(conn)
        return conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._conn()
        if self.dialect.name == "sqlite":
            return list(conn.execute(sql, params).fetchall())
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _check(self) -> None:
        """Fail at start, naming the store, when it cannot be read or lacks the summary."""
        try:
            self._rows(f"SELECT count(*) FROM {TABLE} WHERE 1 = 0")
        except Exception as exc:
            raise HistoryError(f"{self.url}: cannot read the score history: {exc}") from exc
        try:
            self._rows(f"SELECT count(*) FROM {SUMMARY} WHERE 1 = 0")
        except Exception as exc:
            raise HistoryError(
                f"{self.url}: the history has no {SUMMARY} table (it was written by an older "
                "healthstream); the next worker or 'healthstream replay --history' to open it "
                "adds and fills the table"
            ) from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    # -- the book ---------------------------------------------------------------------------

    def now(self) -> datetime | None:
        """The book's time: its newest output's (a replayed history reads as it did then)."""
        rows = self._rows(f"SELECT max(event_time) FROM {SUMMARY}")
        value = rows[0][0] if rows else None
        return value if isinstance(value, datetime) else _parse_time(value)

    def book(self, query: BookQuery) -> BookPage:
        d, m = self.dialect, self.dialect.mark
        now = self.now()
        as_of = d.text_time(now) if now else None
        filters: list[str] = []
        params: list[Any] = []
        if query.segment is not None:
            filters.append(f"a.segment = {m}")
            params.append(query.segment)
        if query.search:
            filters.append(f"a.account_id {d.like} {m} ESCAPE '\\'")
            params.append("%" + _like_escape(query.search) + "%")
        where = " AND ".join(filters) or "1 = 1"
        counts = {
            zone: n
            for zone, n in self._rows(
                f"SELECT a.zone, count(*) FROM {SUMMARY} a WHERE {where} GROUP BY a.zone", params
            )
        }
        zones = {str(z): int(n) for z, n in counts.items() if z is not None}
        if query.zone is not None:
            filters.append(f"a.zone = {m}")
            params.append(query.zone)
            total = zones.get(query.zone, 0)
        else:
            total = sum(int(n) for n in counts.values())
        where = " AND ".join(filters) or "1 = 1"
        order, order_params = self._order(query, now)
        ids = [
            r[0]
            for r in self._rows(
                f"SELECT a.account_id FROM {SUMMARY} a WHERE {where}"
                f" ORDER BY {order} LIMIT {m} OFFSET {m}",
                [*params, *order_params, query.per, query.offset],
            )
        ]
        segments = [
            r[0]
            for r in self._rows(
                f"SELECT DISTINCT segment FROM {SUMMARY} WHERE segment IS NOT NULL"
                " ORDER BY segment LIMIT 1000"
            )
        ]
        return BookPage(
            as_of=as_of,
            query=query,
            total=total,
            pages=pages_of(total, query.per),
            zones=zones,
            segments=segments,
            accounts=self._book_rows(ids, now),
        )

    def _order(self, query: BookQuery, now: datetime | None) -> tuple[str, list[Any]]:
        """The ORDER BY of a sort, with its parameters; the account id breaks ties."""
        d = self.dialect
        direction = "DESC" if query.order == "desc" else "ASC"
        params: list[Any] = []

        def change(days: int) -> str:
            if now is None:
                return "NULL"
            then = d.time(now - timedelta(days=days))
            params.extend([then, then])
            # an account with no output since then has the score it had then: no seek
            return f"(CASE WHEN a.event_time <= {d.mark} THEN 0 ELSE a.score - {d.score_at()} END)"

        terms: list[tuple[str, bool]]  # (expression, may be null)
        if query.sort == "risk":
            terms = [("a.score", True), (change(7), True)]
        elif query.sort == "account":
            terms = []
        elif query.sort == "score":
            terms = [("a.score", True)]
        elif query.sort == "zone":
            terms = [(_ZONE_RANK, False), ("a.score", True)]
        elif query.sort in ("change_7d", "change_30d"):
            terms = [(change(7 if query.sort == "change_7d" else 30), True), ("a.score", True)]
        elif query.sort == "reason":
            terms = [("a.reason", True), ("a.score", True)]
        elif query.sort == "action":
            terms = [("a.action", True), ("a.score", True)]
        else:  # changed
            terms = [("a.changed_at", True)]
        parts = [f"{expr} {direction}" + (" NULLS LAST" if null else "") for expr, null in terms]
        parts.append(f"a.account_id {direction}")
        return ", ".join(parts), params

    def _book_rows(self, ids: list[str], now: datetime | None) -> list[BookRow]:
        if not ids:
            return []
        d, m = self.dialect, self.dialect.mark
        marks = ", ".join([m] * len(ids))
        if now is None:
            times = [None, None, None]
            score_at = ["NULL", "NULL", "NULL"]
        else:
            times = [d.time(now - timedelta(days=n)) for n in (7, 30, SPARK_DAYS)]
            score_at = [d.score_at()] * 3
        found = self._rows(
            f"SELECT {_SUMMARY_COLUMNS}, {score_at[0]}, {score_at[1]}, {score_at[2]}"
            f" FROM {SUMMARY} a WHERE a.account_id IN ({marks})",
            [*[t for t in times if t is not None], *ids],
        )
        points: dict[str, list[tuple[str, int]]] = {}
        if now is not None:
            for account_id, time, score in self._rows(
                f"SELECT account_id, event_time, score FROM {TABLE}"
                f" WHERE account_id IN ({marks}) AND event_time > {m} ORDER BY account_id, seq",
                [*ids, times[2]],
            ):
                point = (d.text_time(time) or "", score)
                line = points.setdefault(account_id, [])
                # an alert or an override comes with the score change of the same moment
                if score is not None and (not line or line[-1] != point):
                    line.append(point)
        rows: dict[str, BookRow] = {}
        for r in found:
            account_id, seq, score, zone, event_time, action, changed_at, segment, reason = r[:9]
            at_7, at_30, at_90 = r[9:12]
            spark = points.get(account_id, [])
            if at_90 is not None and now is not None:
                start = d.text_time(d.time(now - timedelta(days=SPARK_DAYS))) or ""
                spark = [(start, at_90), *spark]
            rows[account_id] = BookRow(
                account_id=account_id,
                score=score,
                zone=zone,
                change_7d=None if at_7 is None or score is None else score - at_7,
                change_30d=None if at_30 is None or score is None else score - at_30,
                sparkline=spark,
                reason=reason,
                action=action,
                segment=segment,
                changed_at=d.text_time(changed_at),
                event_time=d.text_time(event_time),
                seq=seq,
            )
        return [rows[i] for i in ids if i in rows]

    # -- an account -------------------------------------------------------------------------

    def account(
        self, account_id: str, before: int | None = None, limit: int = CHANGES_PER_PAGE
    ) -> AccountPage | None:
        """The account, or None when the history does not know it."""
        d, m = self.dialect, self.dialect.mark
        summary = self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM {SUMMARY} a WHERE a.account_id = {m}", [account_id]
        )
        if not summary:
            return None
        _, seq, score, zone, event_time, action, changed_at, segment, reason = summary[0]
        scores = [
            ScorePoint(d.text_time(t) or "", s, z, q)
            for q, t, s, z in reversed(
                self._rows(
                    f"SELECT seq, event_time, score, zone FROM {TABLE} WHERE account_id = {m}"
                    f" AND score IS NOT NULL ORDER BY seq DESC LIMIT {m}",
                    [account_id, MAX_POINTS],
                )
            )
        ]
        cursor = "" if before is None else f" AND seq < {m}"
        rows = self._rows(
            f"SELECT seq, payload FROM {TABLE} WHERE account_id = {m} AND kind <> 'alert'"
            f"{cursor} ORDER BY seq DESC LIMIT {m}",
            [account_id, *([] if before is None else [before]), limit + 1],
        )
        changes = [d.payload(p) for _, p in rows[:limit]]
        older = rows[limit - 1][0] if len(rows) > limit else None
        alerts = [
            d.payload(p)
            for (p,) in self._rows(
                f"SELECT payload FROM {TABLE} WHERE account_id = {m} AND kind = 'alert'"
                f" ORDER BY seq DESC LIMIT {m}",
                [account_id, limit],
            )
        ]
        text = "payload" if d.name == "sqlite" else "payload::text"
        evidence = (
            d.payload(p)
            for (p,) in self._rows(
                f"SELECT payload FROM {TABLE} WHERE account_id = {m}"
                f" AND ({text} LIKE {m} OR {text} LIKE {m}) ORDER BY seq DESC LIMIT {m}",
                [account_id, "%renewal_date%", "%champion%", 200],
            )
        )
        return AccountPage(
            account_id=account_id,
            score=score,
            zone=zone,
            action=action,
            reason=reason,
            changed_at=d.text_time(changed_at),
            event_time=d.text_time(event_time),
            seq=seq,
            facts=facts_from(evidence, segment),
            scores=scores,
            changes=changes,
            older=older,
            alerts=alerts,
        )

    # -- alerts -----------------------------------------------------------------------------

    def alerts(self, query: AlertQuery) -> AlertsPage:
        d, m = self.dialect, self.dialect.mark
        severity, alert = d.field.format("severity"), d.field.format("alert")
        counts = [
            AlertCount(s, a, int(n))
            for s, a, n in self._rows(
                f"SELECT {severity}, {alert}, count(*) FROM {TABLE} WHERE kind = 'alert'"
                f" GROUP BY {severity}, {alert}"
            )
        ]
        counts.sort(key=lambda c: (_severity_rank(c.severity), str(c.alert)))
        filters = ["kind = 'alert'"]
        params: list[Any] = []
        if query.severity is not None:
            filters.append(f"{severity} = {m}")
            params.append(query.severity)
        if query.alert is not None:
            filters.append(f"{alert} = {m}")
            params.append(query.alert)
        total = sum(
            c.count
            for c in counts
            if query.severity in (None, c.severity) and query.alert in (None, c.alert)
        )
        rows = self._rows(
            f"SELECT payload FROM {TABLE} WHERE {' AND '.join(filters)}"
            f" ORDER BY event_time DESC, account_id, seq LIMIT {m} OFFSET {m}",
            [*params, query.per, query.offset],
        )
        return AlertsPage(
            query=query,
            total=total,
            pages=pages_of(total, query.per),
            counts=counts,
            alerts=[d.payload(p) for (p,) in rows],
        )


def _severity_rank(severity: str | None) -> int:
    return {"red": 0, "yellow": 1, "monitor": 2}.get(severity or "", 3)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
