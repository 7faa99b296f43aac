"""The dashboard's queries over a replayed history, checked against the outputs written to
it; on SQLite, and on PostgreSQL with the same rows."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from dashboard_history import HOSTILE, History

from healthstream.dashboard.book import (
    SORTS,
    ZONES,
    AlertQuery,
    BookQuery,
    BookRow,
    QueryError,
    alert_query,
    book_query,
)
from healthstream.dashboard.store import HistoryReader
from sinks import HistoryError, ScoreHistory


@pytest.fixture(scope="module")
def reader(history: History) -> HistoryReader:
    return HistoryReader(history.url)


def everyone(reader: HistoryReader, **query: Any) -> list[BookRow]:
    """Every account the query lists, through all its pages."""
    rows: list[BookRow] = []
    page = 1
    while True:
        found = reader.book(BookQuery(page=page, per=7, **query))
        rows += found.accounts
        if page >= found.pages:
            return rows
        page += 1


def score_at(outputs: list[dict[str, Any]], account: str, when: datetime) -> int | None:
    """The score of the account's newest output at or before ``when``."""
    scores = [
        (datetime.fromisoformat(o["event_time"]), o["seq"], o["score"])
        for o in outputs
        if o["account_id"] == account and datetime.fromisoformat(o["event_time"]) <= when
    ]
    return max(scores)[2] if scores else None


def test_the_book_holds_each_accounts_newest_output(history: History, reader: HistoryReader):
    newest = history.newest()
    rows = everyone(reader)
    assert sorted(r.account_id for r in rows) == sorted(newest)
    for r in rows:
        out = newest[r.account_id]
        assert (r.seq, r.score, r.zone, r.action) == (
            out["seq"],
            out["score"],
            out["zone"],
            out["recommended_action"],
        )
    zones: dict[str, int] = {}
    for out in newest.values():
        zones[out["zone"]] = zones.get(out["zone"], 0) + 1
    page = reader.book(BookQuery())
    assert page.zones == zones and page.total == len(newest)
    assert page.as_of == max(o["event_time"] for o in history.outputs)


def test_changes_over_7_and_30_days_and_the_sparkline(history: History, reader: HistoryReader):
    now = datetime.fromisoformat(max(o["event_time"] for o in history.outputs))
    for r in everyone(reader):
        assert r.score is not None
        for days, got in ((7, r.change_7d), (30, r.change_30d)):
            then = score_at(history.outputs, r.account_id, now - timedelta(days=days))
            assert got == (None if then is None else r.score - then), (r.account_id, days)
        assert r.sparkline, r.account_id
        assert r.sparkline[-1][1] == r.score
        assert all(
            now - timedelta(days=90) <= datetime.fromisoformat(t) <= now for t, _ in r.sparkline
        )


def test_the_default_order_is_lowest_score_then_biggest_fall(reader: HistoryReader):
    rows = everyone(reader)
    fall = [(r.score, 10**6 if r.change_7d is None else r.change_7d, r.account_id) for r in rows]
    assert fall == sorted(fall)
    assert [r.account_id for r in everyone(reader, order="desc")] == [
        r.account_id for r in rows[::-1]
    ]


@pytest.mark.parametrize("sort", SORTS)
def test_every_column_sorts_both_ways(reader: HistoryReader, sort: str) -> None:
    rank = {z: i for i, z in enumerate(ZONES)}
    key = {
        "account": lambda r: (r.account_id,),
        "score": lambda r: (r.score,),
        "zone": lambda r: (rank[r.zone], r.score),
        "change_7d": lambda r: (r.change_7d is None, r.change_7d or 0),
        "change_30d": lambda r: (r.change_30d is None, r.change_30d or 0),
        "reason": lambda r: (r.reason is None, r.reason or ""),
        "action": lambda r: (r.action is None, r.action or ""),
        "changed": lambda r: (r.changed_at is None, r.changed_at or ""),
        "risk": lambda r: (r.score, r.change_7d is None, r.change_7d or 0),
    }[sort]
    ascending = [key(r) for r in everyone(reader, sort=sort)]
    assert ascending == sorted(ascending)
    descending = everyone(reader, sort=sort, order="desc")
    # descending keeps missing values last, as ascending does
    values = [key(r) for r in descending if key(r)[0] is not True]
    assert values == sorted(values, reverse=True)
    assert len(descending) == len(ascending)


def test_filters_and_search(history: History, reader: HistoryReader) -> None:
    newest = history.newest()
    for zone in ("critical", "at_risk", "healthy"):
        rows = everyone(reader, zone=zone)
        assert rows and {r.zone for r in rows} == {zone}
        assert len(rows) == sum(1 for o in newest.values() if o["zone"] == zone)
    page = reader.book(BookQuery())
    assert page.segments == ["enterprise", "smb", "startup"]
    smb = everyone(reader, segment="smb")
    assert smb and {r.segment for r in smb} == {"smb"}
    found = everyone(reader, search="ACCT-0001")  # any case, any part of the id
    assert sorted(r.account_id for r in found) == sorted(a for a in newest if "acct-0001" in a)
    assert [r.account_id for r in everyone(reader, search="%")] == [HOSTILE]  # not a wildcard
    assert [r.account_id for r in everyone(reader, search="<script>")] == [HOSTILE]
    counted = reader.book(BookQuery(search="acct-0002", zone="healthy"))
    assert counted.total == counted.zones.get("healthy", 0)
    assert sum(counted.zones.values()) == sum(1 for a in newest if "acct-0002" in a)


def test_an_account_page_has_every_change_its_alerts_and_facts(
    history: History, reader: HistoryReader
) -> None:
    account = max(
        history.newest(),
        key=lambda a: sum(
            1 for o in history.outputs if o["account_id"] == a and o["kind"] == "alert"
        ),
    )
    mine = [o for o in history.outputs if o["account_id"] == account]
    changes: list[dict[str, Any]] = []
    before = None
    while True:
        page = reader.account(account, before, limit=5)
        assert page is not None
        changes += page.changes
        if page.older is None:
            break
        before = page.older
    assert changes == [o for o in mine if o["kind"] != "alert"][::-1]
    assert page.alerts == [o for o in mine if o["kind"] == "alert"][::-1] != []
    assert [p.seq for p in page.scores] == [o["seq"] for o in mine]
    assert page.facts.segment == next(
        o["segment"] for o in mine[::-1] if o["kind"] == "score_changed"
    )
    assert reader.account("acct-unknown") is None


def test_alerts_newest_first_by_severity_and_kind(history: History, reader: HistoryReader):
    alerts = [o for o in history.outputs if o["kind"] == "alert"]
    page = reader.alerts(AlertQuery(per=200))
    assert page.total == len(alerts)
    times = [a["event_time"] for a in page.alerts]
    assert times == sorted(times, reverse=True)
    counts = {(c.severity, c.alert): c.count for c in page.counts}
    for kind in {a["alert"] for a in alerts}:
        assert counts[("red", kind)] == sum(1 for a in alerts if a["alert"] == kind)
        only = reader.alerts(AlertQuery(alert=kind, per=200))
        assert {a["alert"] for a in only.alerts} == {kind}
        assert only.total == len(only.alerts) == counts[("red", kind)]
    assert reader.alerts(AlertQuery(severity="yellow")).alerts == []


def test_query_parameters_are_checked() -> None:
    assert book_query({"zone": "critical", "sort": "score", "order": "desc", "page": "3"}) == (
        BookQuery(zone="critical", sort="score", order="desc", page=3)
    )
    for params, message in (
        ({"zone": "purple"}, "zone: one of"),
        ({"sort": "payload"}, "sort: one of"),
        ({"order": "sideways"}, "order: asc or desc"),
        ({"page": "0"}, "page: must be from 1"),
        ({"page": "two"}, "page: expected a whole number"),
        ({"per": "100000"}, "per: must be from 1 to 200"),
        ({"q": "x" * 201}, "q: at most 200 characters"),
    ):
        with pytest.raises(QueryError, match=message):
            book_query(params)
    with pytest.raises(QueryError, match="severity: one of"):
        alert_query({"severity": "purple"})


def test_the_store_is_opened_read_only(history: History, reader: HistoryReader) -> None:
    before = history.path.stat().st_mtime_ns
    reader.book(BookQuery())
    conn = reader._conn()
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
        conn.execute("DELETE FROM score_history")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("CREATE INDEX nope ON score_history (kind)")
    assert history.path.stat().st_mtime_ns == before


def test_a_missing_store_or_summary_is_named(tmp_path) -> None:
    with pytest.raises(HistoryError, match="no such history file"):
        HistoryReader(f"sqlite:///{tmp_path / 'absent.db'}")
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE score_history (account_id TEXT)")
    with pytest.raises(HistoryError, match="no score_accounts table"):
        HistoryReader(f"sqlite:///{old}")


def test_postgresql_reads_as_sqlite_does(
    history: History, reader: HistoryReader, postgres_url: str
) -> None:
    import psycopg

    name = f"dashboard_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    writer = ScoreHistory(url)
    writer.write(history.outputs)
    writer.close()
    pg = HistoryReader(url)
    try:
        for query in (
            BookQuery(),
            BookQuery(sort="change_30d", order="desc", per=10, page=2),
            BookQuery(zone="critical"),
            BookQuery(segment="smb", sort="reason"),
            BookQuery(search="ACCT-0001", sort="changed"),
            BookQuery(search="%"),
        ):
            assert pg.book(query) == reader.book(query), query
        for account in (HOSTILE, "acct-00007"):
            assert pg.account(account, limit=4) == reader.account(account, limit=4)
        assert pg.alerts(AlertQuery(per=10, page=2)) == reader.alerts(AlertQuery(per=10, page=2))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pg._rows("DELETE FROM score_history")
    finally:
        pg.close()
