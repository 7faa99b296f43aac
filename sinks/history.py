"""Score history: every output event as a row in SQLite (embedded) or PostgreSQL.

One table, ``score_history``, keyed by (account_id, seq, kind): an event delivered again
(a worker re-reading from its last commit, a replay run twice) adds nothing. Rows are
written in one transaction per flush, so a batch is stored whole or not at all.

Beside it, ``score_accounts`` keeps one row per account, its newest output, updated in the
same transaction, so that a reader (``healthstream serve``) lists a book of any size
without reading the latest row of every account out of the history.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from scoring.detectors import SEVERITY_RANK
from scoring.outputs import OutputEvent
from sinks.base import redact_url

TABLE = "score_history"
#: one row per account: its newest output, and its newest score change
SUMMARY = "score_accounts"

_COLUMNS = "account_id, seq, kind, score, zone, event_time, config_version, payload"

#: a field of an alert's payload, as each store's expression index on alerts spells it
SQLITE_FIELD = "json_extract(payload, '$.{}')"
POSTGRESQL_FIELD = "(payload->>'{}')"

Row = tuple[str, int, str, int | None, str | None, str | None, str | None, str]


@dataclass(frozen=True)
class _Latest:
    """What ``score_accounts`` keeps of one output: its key, score and zone, the action it
    recommends, and for a score change its segment and main reason."""

    account_id: str
    seq: int
    kind: str
    score: int | None
    zone: str | None
    event_time: str | None
    action: str | None
    segment: str | None
    reason: str | None


def _schema(seq: str, time: str, payload: str, field: str) -> list[str]:
    """The tables and indexes, in the column types of a store."""
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        f" account_id TEXT NOT NULL, seq {seq} NOT NULL, kind TEXT NOT NULL,"
        f" score INTEGER, zone TEXT, event_time {time}, config_version TEXT,"
        f" payload {payload} NOT NULL, PRIMARY KEY (account_id, seq, kind))",
        f"CREATE TABLE IF NOT EXISTS {SUMMARY} ("
        f" account_id TEXT PRIMARY KEY, seq {seq} NOT NULL, score INTEGER, zone TEXT,"
        f" event_time {time}, action TEXT, changed_seq {seq}, changed_at {time},"
        " segment TEXT, reason TEXT)",
        # an account's score at any time: one seek, without reading the payload
        f"CREATE INDEX IF NOT EXISTS {TABLE}_scores ON {TABLE}"
        " (account_id, event_time, seq, score)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_alerts ON {TABLE} (event_time) WHERE kind = 'alert'",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_alert_kinds ON {TABLE}"
        f" ({field.format('severity')}, {field.format('alert')}, event_time)"
        " WHERE kind = 'alert'",
        f"CREATE INDEX IF NOT EXISTS {SUMMARY}_score ON {SUMMARY} (score, account_id)",
        f"CREATE INDEX IF NOT EXISTS {SUMMARY}_zone ON {SUMMARY} (zone, score, account_id)",
        f"CREATE INDEX IF NOT EXISTS {SUMMARY}_segment ON {SUMMARY} (segment, score, account_id)",
        f"CREATE INDEX IF NOT EXISTS {SUMMARY}_event_time ON {SUMMARY} (event_time)",
    ]


def _summary_statements(mark: str, time_cast: str = "") -> tuple[str, str]:
    """The upsert of an account's newest output, and the update of its newest score change;
    each leaves a newer row alone, so a redelivered or late batch changes nothing."""
    t = time_cast
    newest = (
        f"INSERT INTO {SUMMARY} (account_id, seq, score, zone, event_time, action)"
        f" VALUES ({mark}, {mark}, {mark}, {mark}, {mark}{t}, {mark})"
        " ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq, score = excluded.score,"
        " zone = excluded.zone, event_time = excluded.event_time, action = excluded.action"
        f" WHERE excluded.seq > {SUMMARY}.seq"
    )
    changed = (
        f"UPDATE {SUMMARY} SET changed_seq = {mark}, changed_at = {mark}{t}, segment = {mark},"
        f" reason = {mark} WHERE account_id = {mark} AND"
        f" (changed_seq IS NULL OR changed_seq < {mark})"
    )
    return newest, changed


def _summary_rows(
    latest: Iterable[_Latest],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A batch's parameters for the two summary statements: per account, its newest output
    and its newest score change, in account order (writers lock rows in one order)."""
    newest: dict[str, _Latest] = {}
    changed: dict[str, _Latest] = {}
    for item in latest:
        if item.account_id not in newest or item.seq > newest[item.account_id].seq:
            newest[item.account_id] = item
        if item.kind == "score_changed" and (
            item.account_id not in changed or item.seq > changed[item.account_id].seq
        ):
            changed[item.account_id] = item
    return (
        [(a, n.seq, n.score, n.zone, n.event_time, n.action) for a, n in sorted(newest.items())],
        [(c.seq, c.event_time, c.segment, c.reason, a, c.seq) for a, c in sorted(changed.items())],
    )


def _newest_outputs(mark: str) -> str:
    """Each account's newest output and newest score change, to fill ``score_accounts``
    for a history written before it existed."""
    return (
        f"SELECT h.account_id, h.seq, h.kind, h.score, h.zone, h.event_time, h.payload"
        f" FROM {TABLE} h JOIN (SELECT account_id, max(seq) AS seq FROM {TABLE}"
        " GROUP BY account_id) n ON n.account_id = h.account_id AND n.seq = h.seq"
        " UNION ALL"
        f" SELECT h.account_id, h.seq, h.kind, h.score, h.zone, h.event_time, h.payload"
        f" FROM {TABLE} h JOIN (SELECT account_id, max(seq) AS seq FROM {TABLE}"
        " WHERE kind = 'score_changed' GROUP BY account_id) n"
        " ON n.account_id = h.account_id AND n.seq = h.seq AND h.kind = 'score_changed'"
    )


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
    def insert(self, rows: Sequence[Row], latest: Sequence[_Latest]) -> int: ...

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
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                had_summary = self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SUMMARY,)
                ).fetchone()
                for statement in _schema("INTEGER", "TEXT", "TEXT", SQLITE_FIELD):
                    self.conn.execute(statement)
                if not had_summary:
                    self._summarise([_latest_of(r, orjson.loads(r[6])) for r in self._newest()])
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot open the SQLite history: {exc}") from exc

    def _newest(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(_newest_outputs("?")).fetchall()

    def _summarise(self, latest: Sequence[_Latest]) -> None:
        newest, changed = _summary_rows(latest)
        upsert, update = _summary_statements("?")
        self.conn.executemany(upsert, newest)
        self.conn.executemany(update, changed)

    def insert(self, rows: Sequence[Row], latest: Sequence[_Latest]) -> int:
        before = self.conn.total_changes
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (account_id, seq, kind) DO NOTHING",
                rows,
            )
            added = self.conn.total_changes - before
            self._summarise(latest)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return added

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
            with self.conn.transaction(), self.conn.cursor() as cursor:
                # one writer at a time creates the tables and fills the summary
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SUMMARY,))
                cursor.execute("SELECT to_regclass(%s)", (SUMMARY,))
                row = cursor.fetchone()
                had_summary = row is not None and row[0] is not None
                for statement in _schema("BIGINT", "TIMESTAMPTZ", "JSONB", POSTGRESQL_FIELD):
                    cursor.execute(statement)
                if not had_summary:
                    cursor.execute(_newest_outputs("%s"))
                    newest = cursor.fetchall()
                    self._summarise(
                        cursor,
                        [_latest_of((*r[:5], _text_time(r[5])), r[6]) for r in newest],
                    )
        except psycopg.Error as exc:
            raise HistoryError(
                f"{redact_url(url)}: cannot open the PostgreSQL history: {exc}"
            ) from exc

    @staticmethod
    def _summarise(cursor: Any, latest: Sequence[_Latest]) -> None:
        newest, changed = _summary_rows(latest)
        upsert, update = _summary_statements("%s", "::timestamptz")
        if newest:
            cursor.executemany(upsert, newest)
        if changed:
            cursor.executemany(update, changed)

    def insert(self, rows: Sequence[Row], latest: Sequence[_Latest]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {TABLE} ({_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s::timestamptz, %s, %s::jsonb)"
                " ON CONFLICT (account_id, seq, kind) DO NOTHING",
                rows,
            )
            added = max(cursor.rowcount, 0)
            self._summarise(cursor, latest)
            return added

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


def store_of(url: str) -> tuple[str, str]:
    """Which store a history URL names: ``("sqlite", file path)`` or ``("postgresql", url)``."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise HistoryError(
                f"history URL {redact_url(url)!r}: a SQLite URL names a file, as "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        return "sqlite", rest[1:]
    if sep and scheme in ("postgresql", "postgres"):
        return "postgresql", url
    raise HistoryError(
        f"history URL {redact_url(url)!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/database"
    )


def _backend(url: str) -> _Backend:
    store, where = store_of(url)
    return _SQLite(where) if store == "sqlite" else _PostgreSQL(where)


def main_reason(event: OutputEvent) -> str | None:
    """What moved a score change most: the override or finding that capped or set the score
    furthest, or the signal with the largest impact; the more severe one on a tie. "first
    score" for an account's first, None when nothing is named."""
    # (points moved, severity rank, how to say it)
    moves: list[tuple[float, int, str]] = []
    for o in event.get("overrides") or ():
        value, before = o.get("value"), o.get("score_before")
        moved = abs(before - value) if value is not None and before is not None else 0.0
        rank = SEVERITY_RANK.get(o.get("severity") or "", 0)
        finding = (o.get("evidence") or {}).get("finding")
        if o.get("override") == "detector_cap" and isinstance(finding, str):
            name, _, series = finding.partition(":")
            label = f"{name} on {series}" if series else name
        else:
            label = str(o.get("override"))
        effect = o.get("effect")
        said = f"{label}: {effect} {value}" if value is not None else f"{label}: {effect}"
        moves.append((moved, rank, said))
    capped = {(o.get("evidence") or {}).get("finding") for o in event.get("overrides") or ()}
    for f in event.get("detectors") or ():
        series = f.get("series")
        key = f"{f.get('detector')}:{series}" if series else f.get("detector")
        if key not in capped:
            label = f"{f.get('detector')} on {series}" if series else str(f.get("detector"))
            moves.append((0.0, SEVERITY_RANK.get(f.get("severity") or "", 0), label))
    for m in event.get("signals") or ():
        delta = m.get("delta")
        said = f"{m.get('signal')} {delta:+d}" if isinstance(delta, int) else str(m.get("signal"))
        moves.append((abs(m.get("impact") or 0.0), 0, said))
    if moves:
        return max(moves, key=lambda m: (m[0], m[1]))[2]
    if event.get("kind") == "score_changed" and event.get("previous_score") is None:
        return "first score"
    return None


def _latest_of(key: Sequence[Any], event: OutputEvent) -> _Latest:
    """The summary's view of an output, from its row's first six columns (account_id, seq,
    kind, score, zone, event_time as text) and the event."""
    account_id, seq, kind, score, zone, event_time = key[:6]
    changed = kind == "score_changed"
    segment = event.get("segment") if changed else None
    action = event.get("recommended_action")
    return _Latest(
        account_id,
        seq,
        kind,
        score,
        zone,
        event_time,
        action if isinstance(action, str) else None,
        segment if isinstance(segment, str) else None,
        main_reason(event) if changed else None,
    )


def _text_time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _row(event: OutputEvent) -> Row:
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


def _entry(event: OutputEvent) -> tuple[Row, _Latest]:
    row = _row(event)
    return row, _latest_of(row, event)


def _event_time(event: OutputEvent) -> str | None:
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


def _text(event: OutputEvent, name: str) -> str | None:
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
        self._pending: list[tuple[Row, _Latest]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScoreHistory({self.url!r})"

    def write(self, events: Iterable[OutputEvent]) -> int:
        """Store events in one transaction; returns how many were new."""
        return self._insert([_entry(event) for event in events])

    def deliver(self, key: str, event: OutputEvent) -> None:
        self._pending.append(_entry(event))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events in one transaction; on failure they stay buffered."""
        self._insert(self._pending)
        self._pending = []

    def _insert(self, entries: list[tuple[Row, _Latest]]) -> int:
        if not entries:
            return 0
        with self._lock:
            added = self._backend.insert([e[0] for e in entries], [e[1] for e in entries])
        self.written += added
        self.duplicates += len(entries) - added
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
