"""``healthstream replay``: the core over a file, including time moving for silent accounts."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from scenarios import SILENT, as_lines, silent_account_stream

from healthstream.cli import main
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), min_step=5))


def test_silent_account_score_falls_with_no_events_of_its_own() -> None:
    records = silent_account_stream()
    last_own = max(r["ts"] for r in records if r.get("account_id") == SILENT)
    sink = MemorySink()
    replay(as_lines(records), engine(), sink)
    silent = [e for k, e in sink.events if k == SILENT and e["kind"] == "score_changed"]
    after = [e for e in silent if e["as_of"] > _day(last_own)]
    assert after, "ticks alone should have moved the silent account's score"
    scores = [e["score"] for e in after]
    assert scores == sorted(scores, reverse=True)  # only down
    assert after[-1]["zone"] == "critical"
    assert after[0]["previous_score"] > after[-1]["score"]
    usage = {m["signal"]: m for e in after for m in e["signals"]}["usage_trend"]
    assert usage["score"] == 0 and usage["evidence"]["last_14d"] == 0
    busy = [e for k, e in sink.events if k == "acct-1" and e["kind"] == "score_changed"]
    assert busy[-1]["zone"] != "critical"


def _day(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).date().isoformat()


def test_replay_skips_bad_lines_and_counts_them() -> None:
    lines = as_lines(silent_account_stream(accounts=2, days=5))
    lines[3:3] = [b"{oops", b'{"type":"warp","ts":1}', b"[]"]
    sink = MemorySink()
    _, stats = replay(lines, engine(), sink)
    assert dict(stats.rejected) == {"not_json": 1, "unknown_type": 1, "not_object": 1}
    assert sink.events


def test_replay_command_writes_jsonl(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(as_lines(silent_account_stream(accounts=3, days=30))) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "healthstream.cli", "replay", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    outputs = [orjson.loads(line) for line in done.stdout.splitlines()]
    kinds = {o["kind"] for o in outputs}
    assert "score_changed" in kinds
    assert kinds <= {"score_changed", "override_applied", "override_cleared", "alert"}
    assert b" outputs in " in done.stderr
    sink = MemorySink()
    replay(path.read_bytes().splitlines(), engine(), sink)
    assert [e for _, e in sink.events] == outputs


#: purchases in the shape of a 1990s retailer's log (customer, date, CDs, dollars)
PURCHASES_1997 = (
    "customer,date,cds,usd\n"
    "00002,1997-01-12,1,12.00\n00002,1997-01-12,5,77.00\n00002,1997-03-30,2,29.33\n"
    "00004,1997-01-01,2,29.73\n00004,1997-01-18,2,29.73\n00004,1997-12-12,1,14.96\n"
)
MAP_1997 = "account_id=customer,ts=date,type=const:value_action,value=cds"


def test_a_1990s_log_replays_with_no_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "purchases.csv"
    log.write_text(PURCHASES_1997)
    out = tmp_path / "scores.jsonl"
    assert main(["replay", str(log), "--map", MAP_1997, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "replay: 6 events, 0 ticks, 2 accounts" in err and "rejected" not in err
    outputs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {o["account_id"] for o in outputs} == {"00002", "00004"}
    assert min(o["as_of"] for o in outputs) == "1997-01-01"
    assert "sorted 6 records by time: the file was not in time order" in err


def test_a_time_before_1970_is_refused_naming_the_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "purchases.csv"
    log.write_text(PURCHASES_1997 + "00006,1969-12-31,1,9.99\n")
    assert main(["replay", str(log), "--map", MAP_1997, "--out", str(tmp_path / "o"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "bad_ts: row 8: column 'date' '1969-12-31T00:00:00+00:00' is outside 1970-2200" in err
    assert "rejected: bad_ts=1" in err


def test_a_csv_without_a_mapping_stops_and_says_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "purchases.csv"
    log.write_text(PURCHASES_1997)
    out = tmp_path / "scores.jsonl"
    assert main(["replay", str(log), "--out", str(out)]) == 2
    assert "a CSV file needs --map" in capsys.readouterr().err
    assert not out.exists()  # stopped before any output was opened


def test_a_file_of_which_no_record_maps_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "purchases.txt"  # CSV, but not named so: read as JSONL
    export.write_text(PURCHASES_1997)
    assert main(["replay", str(export), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"no record of {export} mapped to an event: all 7 were rejected" in err
    assert "need --map FIELD=SOURCE" in err and "--format csv" in err
    log = tmp_path / "purchases.csv"
    log.write_text("customer,date,cds\n,1997-01-12,1\n,1997-01-13,2\n")
    assert main(["replay", str(log), "--map", MAP_1997, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "rejected: missing_field=2" in err
    assert "all 2 were rejected; check the mapping: 'healthstream map-check" in err


def test_an_empty_file_is_not_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "events.jsonl"
    empty.write_text("")
    assert main(["replay", str(empty), "--out", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize(
    "command",
    [
        ["backtest", "--at", "1997-06-01"],
        ["calibrate", "--train-at", "1997-06-01", "--test-at", "1997-09-01"],
    ],
    ids=["backtest", "calibrate"],
)
def test_backtest_and_calibrate_say_when_no_row_maps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    log = tmp_path / "purchases.csv"
    log.write_text("customer,date,cds\n,1997-01-12,1\n,1997-01-13,2\n")
    args = [*command, "--events", str(log), "--map", MAP_1997, "--horizon", "30"]
    assert main(args + ["--churn-if-inactive", "--out", str(tmp_path / "o")]) == 1
    assert f"no record of {log} mapped to an event" in capsys.readouterr().err
