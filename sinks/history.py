"""Score history: every output event as a row in SQLite (embedded) or PostgreSQL.

One table, ``score_history``, keyed by (account_id, seq, kind): an event delivered again
(a worker re-reading from its last commit, a replay run twice) adds nothing. Rows are
written in one transaction per flush, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from scoring.engine import Output
from sinks.base import redact_url

TABLE = "score_history"

_COLUMNS = "account_id, seq, kind, score, zone, event_time, config_version, payload"

Row = tuple[str, int, str, int | None, str | None, str | None, str | None, str]


class HistoryError(ValueError):
    """A history URL, store or event that cannot be used; the message names it."""


@dataclass(frozen=True)
class HistoryEntry:
    """One stored output event: its key, the figures worth querying, and the whole event."""

    account_id: str
    seq: int
    kind: str
    score: int | None
    zone: str | None
    event_time: datetime | None
    config_version: str | None
    payload: dict[str, Any]


class _Backend(Protocol):
    def insert(self, rows: Sequence[Row]) -> int: ...

    def select(self, account_id: str, kind: str | None, limit: int) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class _SQLite:
    """The embedded store: one file, written in WAL mode so readers never wait for a writer."""

    def __init__(self, path: str) -> None:
        try:
            # isolation_level=None: transactions are the explicit BEGIN/COMMIT in insert()
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " account_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
                " score INTEGER, zone TEXT, event_time TEXT, config_version TEXT,"
                " payload TEXT NOT NULL, PRIMARY KEY (account_id, seq, kind))"
            )
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot open the SQLite history: {exc}") from exc

    def insert(self, rows: Sequence[Row]) -> int:
        before = self.conn.total_changes
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (account_id, seq, kind) DO NOTHING",
                rows,
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return self.conn.total_changes - before

    def select(self, account_id: str, kind: str | None, limit: int) -> list[tuple[Any, ...]]:
        where, params = _where(account_id, kind, "?")
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} ORDER BY seq DESC, kind LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [
            (
                *r[:5],
                None if r[5] is None else datetime.fromisoformat(r[5]),
                r[6],
                orjson.loads(r[7]),
            )
            for r in rows
        ]

    def close(self) -> None:
        self.conn.close()


class _PostgreSQL:
    """A PostgreSQL database by URL: ``event_time`` is a timestamptz, ``payload`` a jsonb."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise HistoryError(
                f"{redact_url(url)}: PostgreSQL needs the psycopg driver "
                "(pip install 'psycopg[binary]')"
            ) from exc
        self.errors = psycopg.Error
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " account_id TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,"
                " score INTEGER, zone TEXT, event_time TIMESTAMPTZ, config_version TEXT,"
                " payload JSONB NOT NULL, PRIMARY KEY (account_id, seq, kind))"
            )
        except psycopg.Error as exc:
            raise HistoryError(
                f"{redact_url(url)}: cannot open the PostgreSQL history: {exc}"
            ) from exc

    def insert(self, rows: Sequence[Row]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {TABLE} ({_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s::timestamptz, %s, %s::jsonb)"
                " ON CONFLICT (account_id, seq, kind) DO NOTHING",
                rows,
            )
            return max(cursor.rowcount, 0)

    def select(self, account_id: str, kind: str | None, limit: int) -> list[tuple[Any, ...]]:
        where, params = _where(account_id, kind, "%s")
        with self.conn.cursor() as cursor:
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} ORDER BY seq DESC, kind LIMIT %s",
                (*params, limit),
            )
            return list(cursor.fetchall())

    def close(self) -> None:
        self.conn.close()


def _where(account_id: str, kind: str | None, mark: str) -> tuple[str, tuple[str, ...]]:
    if kind is None:
        return f"account_id = {mark}", (account_id,)
    return f"account_id = {mark} AND kind = {mark}", (account_id, kind)


def _backend(url: str) -> _Backend:
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise HistoryError(
                f"history URL {redact_url(url)!r}: a SQLite URL names a file, as "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        return _SQLite(rest[1:])
    if sep and scheme in ("postgresql", "postgres"):
        return _PostgreSQL(url)
    raise HistoryError(
        f"history URL {redact_url(url)!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/database"
    )


def _row(event: Output) -> Row:
    """The table row of an output event; an event without its key fields is refused."""
    for name, kind in (("account_id", str), ("seq", int), ("kind", str)):
        value = event.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HistoryError(
                f"output event field {name!r}: expected {kind.__name__}, got {value!r}"
            )
    score = event.get("score")
    if score is not None and (not isinstance(score, int) or isinstance(score, bool)):
        raise HistoryError(f"output event field 'score': expected int or null, got {score!r}")
    return (
        event["account_id"],
        event["seq"],
        event["kind"],
        score,
        _text(event, "zone"),
        _event_time(event),
        _text(event, "config_version"),
        orjson.dumps(event).decode(),
    )


def _event_time(event: Output) -> str | None:
    """The event's ``event_time``, checked to be ISO-8601 with a UTC offset."""
    value = _text(event, "event_time")
    if value is not None:
        try:
            offset = datetime.fromisoformat(value).utcoffset()
        except ValueError:
            offset = None
        if offset is None:
            raise HistoryError(
                f"output event field 'event_time': {value!r} is not ISO-8601 with an offset"
            )
    return value


def _text(event: Output, name: str) -> str | None:
    value = event.get(name)
    if value is None or isinstance(value, str):
        return value
    raise HistoryError(f"output event field {name!r}: expected a string or null, got {value!r}")


class ScoreHistory:
    """Every output event of every account, queryable per account, newest first.

    As a ``Sink`` it buffers delivered events and writes them in one transaction on
    ``flush`` (``sinks.adapters.ThreadedSink`` flushes once per worker batch) or when
    ``batch_size`` events are waiting (a long replay). Counters: ``written`` (new rows)
    and ``duplicates`` (events already stored, skipped).
    """

    def __init__(self, url: str, batch_size: int = 1000) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        self.url = redact_url(url)
        self.batch_size = batch_size
        self.written = 0
        self.duplicates = 0
        self._backend = _backend(url)
        self._pending: list[Row] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScoreHistory({self.url!r})"

    def write(self, events: Iterable[Output]) -> int:
        """Store events in one transaction; returns how many were new."""
        return self._insert([_row(event) for event in events])

    def deliver(self, key: str, event: Output) -> None:
        self._pending.append(_row(event))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events in one transaction; on failure they stay buffered."""
        self._insert(self._pending)
        self._pending = []

    def _insert(self, rows: list[Row]) -> int:
        if not rows:
            return 0
        with self._lock:
            added = self._backend.insert(rows)
        self.written += added
        self.duplicates += len(rows) - added
        return added

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._backend.close()

    def history(
        self, account_id: str, limit: int = 100, kind: str | None = None
    ) -> list[HistoryEntry]:
        """The account's last ``limit`` outputs (only of ``kind`` if given), newest first."""
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        with self._lock:
            rows = self._backend.select(account_id, kind, limit)
        return [HistoryEntry(*row) for row in rows]

    def latest(self, account_id: str, kind: str | None = None) -> HistoryEntry | None:
        """The account's newest output (every kind carries the score and zone it was sent at)."""
        newest = self.history(account_id, 1, kind)
        return newest[0] if newest else None
