"""A replayed synthetic history, with one hostile account id, and ``healthstream serve``
over it in a child process: what the dashboard's tests read, through SQL and through HTTP."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import orjson
import pytest
from dashboard_history import HOSTILE, HOSTILE_FROM, History, ServeProcess, healthstream


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """40 accounts over 100 days, generated and replayed with ``healthstream`` (the
    five_factor profile, which scores segments), plus an account with a hostile id."""
    folder = tmp_path_factory.mktemp("dashboard-history")
    events = folder / "events.jsonl"
    healthstream(
        "generate", "--accounts", "40", "--days", "100", "--seed", "7", "--out", str(events)
    )
    lines = events.read_bytes().splitlines()
    copied = []
    for line in lines:
        record = orjson.loads(line)
        if record.get("account_id") == HOSTILE_FROM:
            copied.append(
                orjson.dumps(
                    {**record, "account_id": HOSTILE, "event_id": "h" + record["event_id"]}
                )
            )
    events.write_bytes(b"\n".join([*lines, *copied]) + b"\n")
    path = folder / "history.db"
    outputs = folder / "outputs.jsonl"
    url = f"sqlite:///{path}"
    healthstream(
        "replay", str(events), "--history", url, "--profile", "five_factor", "--out", str(outputs)
    )
    return History(url, path, [orjson.loads(line) for line in outputs.read_bytes().splitlines()])


@pytest.fixture(scope="session")
def server(history: History) -> Iterator[ServeProcess]:
    serving = ServeProcess(history.url)
    try:
        yield serving
    finally:
        serving.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server from the pgserver wheel, for the session; its admin URL."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg")
    data_dir = tmp_path_factory.mktemp("dashboard-pg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            pg = pgserver.get_server(data_dir, cleanup_mode="stop")
    except ImportError:
        pytest.skip("PostgreSQL tests need the pgserver wheel (pip install -e '.[dev]')")
    except Exception as exc:
        pytest.skip(f"the pgserver PostgreSQL server could not start here: {exc}")
    try:
        yield pg.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pg.cleanup()
