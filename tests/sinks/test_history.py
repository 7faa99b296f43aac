"""Score history on a real SQLite file and a real PostgreSQL server, with the same cases."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest

from healthstream.dev.synthetic import Scenario, generate
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import FanOutSink, HistoryError, MemorySink, ScoreHistory
from sinks.history import main_reason

SCENARIO = Scenario(accounts=8, days=45, seed=3)


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), min_step=5))


@pytest.fixture(scope="module")
def scenario_lines() -> list[bytes]:
    return [orjson.dumps(record) for record in generate(SCENARIO)]


@pytest.fixture(scope="module")
def expected_outputs(scenario_lines: list[bytes]) -> list[dict[str, Any]]:
    """What the core emits over the scenario, to compare the stored history against."""
    sink = MemorySink()
    replay(scenario_lines, engine(), sink)
    return [event for _, event in sink.events]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server from the pgserver wheel, for the session; its admin URL."""
    data_dir = tmp_path_factory.mktemp("pg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            server = pgserver.get_server(data_dir, cleanup_mode="stop")
    except ImportError:
        pytest.skip("PostgreSQL tests need the pgserver wheel (pip install -e '.[dev]')")
    except Exception as exc:
        pytest.skip(f"the pgserver PostgreSQL server could not start here: {exc}")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty history store of each backend: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg")
    admin_url = request.getfixturevalue("postgres_server")
    name = f"history_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def by_account(outputs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    accounts: dict[str, list[dict[str, Any]]] = {}
    for event in outputs:
        accounts.setdefault(event["account_id"], []).append(event)
    return accounts


def test_replay_fills_the_history_and_it_survives_reopening(
    history_url: str, scenario_lines: list[bytes], expected_outputs: list[dict[str, Any]]
) -> None:
    history = ScoreHistory(history_url, batch_size=50)
    alongside = MemorySink()
    replay(scenario_lines, engine(), FanOutSink(alongside, history))  # replay closes the sinks
    assert history.written == len(expected_outputs) and history.duplicates == 0
    assert [event for _, event in alongside.events] == expected_outputs
    assert {e["kind"] for e in expected_outputs} >= {"score_changed", "alert"}

    reopened = ScoreHistory(history_url)
    try:
        for account_id, outputs in by_account(expected_outputs).items():
            stored = reopened.history(account_id, limit=1000)
            assert [e.payload for e in stored] == outputs[::-1]
            newest = outputs[-1]
            latest = reopened.latest(account_id)
            assert latest is not None
            assert (latest.seq, latest.kind, latest.score, latest.zone) == (
                newest["seq"],
                newest["kind"],
                newest["score"],
                newest["zone"],
            )
            assert latest.config_version == newest["config_version"]
            assert latest.event_time is not None
            assert latest.event_time.isoformat(timespec="milliseconds") == newest["event_time"]
        assert reopened.latest("acct-unknown") is None
    finally:
        reopened.close()


def test_redelivered_events_add_no_rows(
    history_url: str, scenario_lines: list[bytes], expected_outputs: list[dict[str, Any]]
) -> None:
    first = ScoreHistory(history_url)
    assert first.write(expected_outputs[:60]) == 60
    first.close()

    again = ScoreHistory(history_url, batch_size=25)
    replay(scenario_lines, engine(), again)  # the first 60 outputs come round once more
    assert again.written == len(expected_outputs) - 60
    assert again.duplicates == 60

    check = ScoreHistory(history_url)
    try:
        assert check.write(expected_outputs) == 0
        assert check.duplicates == len(expected_outputs)
        stored = sum(
            len(check.history(account, limit=1000)) for account in by_account(expected_outputs)
        )
        assert stored == len(expected_outputs)
    finally:
        check.close()


def test_history_filters_by_kind_and_limits_newest_first(
    history_url: str, expected_outputs: list[dict[str, Any]]
) -> None:
    history = ScoreHistory(history_url)
    try:
        history.write(expected_outputs)
        account_id, outputs = max(by_account(expected_outputs).items(), key=lambda a: len(a[1]))
        scores = [e for e in outputs if e["kind"] == "score_changed"]
        last_three = history.history(account_id, limit=3, kind="score_changed")
        assert [e.seq for e in last_three] == [e["seq"] for e in scores[::-1][:3]]
        assert all(e.kind == "score_changed" for e in last_three)
        latest_score = history.latest(account_id, kind="score_changed")
        assert latest_score is not None and latest_score.score == scores[-1]["score"]
        with pytest.raises(ValueError, match="limit"):
            history.history(account_id, limit=0)
    finally:
        history.close()


def test_a_bad_event_fails_its_whole_batch(
    history_url: str, expected_outputs: list[dict[str, Any]]
) -> None:
    history = ScoreHistory(history_url)
    try:
        bad = {**expected_outputs[5], "event_time": "yesterday"}
        with pytest.raises(HistoryError, match="'event_time': 'yesterday'"):
            history.write([*expected_outputs[:5], bad, *expected_outputs[6:10]])
        with pytest.raises(HistoryError, match="'seq': expected int, got None"):
            history.deliver("acct", {k: v for k, v in expected_outputs[0].items() if k != "seq"})
        assert history.written == 0
        assert history.latest(expected_outputs[0]["account_id"]) is None
    finally:
        history.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/scores", "use sqlite:///path/to/file.db or postgresql://"),
        ("scores.db", "use sqlite:///path/to/file.db"),
        ("sqlite://", "a SQLite URL names a file"),
        ("sqlite://host/scores.db", "a SQLite URL names a file"),
        ("sqlite:///", "a SQLite URL names a file"),
    ],
)
def test_bad_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        ScoreHistory(url)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "history.db"
    with pytest.raises(HistoryError, match="no-such-dir/history.db: cannot open"):
        ScoreHistory(f"sqlite:///{path}")


def test_a_postgresql_password_never_shows() -> None:
    url = "postgresql://scorer:hunter2@127.0.0.1:1/scores?sslmode=disable"
    with pytest.raises(HistoryError) as caught:
        ScoreHistory(url)
    assert "postgresql://scorer@127.0.0.1:1/scores" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_repr_names_the_store_without_credentials(tmp_path: Path) -> None:
    history = ScoreHistory(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        assert repr(history) == f"ScoreHistory('sqlite:///{tmp_path / 'h.db'}')"
    finally:
        history.close()


def summary(url: str) -> dict[str, tuple[Any, ...]]:
    """``score_accounts`` as stored: account -> (seq, score, zone, action, segment, reason)."""
    history = ScoreHistory(url)
    try:
        backend: Any = history._backend
        rows = backend.conn.execute(
            "SELECT account_id, seq, score, zone, action, changed_seq, segment, reason"
            " FROM score_accounts"
        ).fetchall()
    finally:
        history.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def expected_summary(outputs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    expected = {}
    for account_id, events in by_account(outputs).items():
        newest = max(events, key=lambda e: e["seq"])
        changed = max((e for e in events if e["kind"] == "score_changed"), key=lambda e: e["seq"])
        expected[account_id] = (
            newest["seq"],
            newest["score"],
            newest["zone"],
            newest["recommended_action"],
            changed["seq"],
            changed["segment"],
            main_reason(changed),
        )
    return expected


def test_the_summary_keeps_each_accounts_newest_output(
    history_url: str, expected_outputs: list[dict[str, Any]]
) -> None:
    history = ScoreHistory(history_url, batch_size=7)
    for event in expected_outputs:
        history.deliver(event["account_id"], event)
    history.close()
    assert summary(history_url) == expected_summary(expected_outputs)

    # an older batch delivered again, or late, leaves the newer rows as they are
    again = ScoreHistory(history_url)
    again.write(expected_outputs[: len(expected_outputs) // 2])
    again.close()
    assert summary(history_url) == expected_summary(expected_outputs)


def test_the_summary_is_filled_for_a_history_written_before_it(
    history_url: str, expected_outputs: list[dict[str, Any]]
) -> None:
    history = ScoreHistory(history_url)
    history.write(expected_outputs)
    backend: Any = history._backend
    backend.conn.execute("DROP TABLE score_accounts")  # as the version before the summary
    history.close()
    assert summary(history_url) == expected_summary(expected_outputs)


def test_the_main_reason_is_what_moved_the_score_most() -> None:
    signals = [
        {"signal": "usage_trend", "delta": -40, "impact": -6.4},
        {"signal": "csat", "delta": 20, "impact": 1.5},
    ]
    assert main_reason({"kind": "score_changed", "signals": signals}) == "usage_trend -40"
    cap = {
        "override": "detector_cap",
        "effect": "cap",
        "value": 39,
        "score_before": 80,
        "severity": "red",
        "evidence": {"finding": "regime_change:logins", "severity": "red"},
    }
    finding = {"detector": "regime_change", "series": "logins", "severity": "red"}
    changed = {"kind": "score_changed", "signals": signals, "overrides": [cap]}
    assert main_reason({**changed, "detectors": [finding]}) == "regime_change on logins: cap 39"
    escalate = {"override": "renewal_escalation", "effect": "escalate", "severity": "red"}
    assert main_reason({"kind": "score_changed", "overrides": [escalate]}) == (
        "renewal_escalation: escalate"
    )
    assert main_reason({"kind": "score_changed", "previous_score": None}) == "first score"
    assert main_reason({"kind": "score_changed", "previous_score": 50}) is None
