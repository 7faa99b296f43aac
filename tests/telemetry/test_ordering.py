"""Files in any order: records sorted by time (stably) before the offline tools replay them,
in memory or in runs spilled to temporary files."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from healthstream.cli import main
from telemetry.codec import BadEvent
from telemetry.ordering import TimeOrder, events_in_time_order, in_time_order
from windows.telemetry import EventType, TelemetryEvent

SPEC = "account_id=customer,ts=date,type=const:value_action,value=cds,amount=usd"
CUSTOMERS = 12


def purchase_log(customers: int = CUSTOMERS, seed: int = 3) -> list[tuple[str, date, int, str]]:
    """Synthetic purchases in the shape of a retailer's log, 1997-1998, in customer order:
    every customer buys first in the first quarter of 1997, some often, some seldom."""
    rng = random.Random(seed)
    rows = []
    for n in range(1, customers + 1):
        day = date(1997, 1, 1) + timedelta(days=rng.randrange(90))
        gap = rng.choice((7, 20, 60, 200))
        while day < date(1998, 7, 1):
            cds = rng.randint(1, 4)
            rows.append((f"{n:05d}", day, cds, f"{cds * rng.uniform(9, 16):.2f}"))
            day += timedelta(days=rng.randint(1, 2 * gap))
    return rows


def write_log(path: Path, rows: list[tuple[str, date, int, str]]) -> str:
    lines = ["customer,date,cds,usd"] + [f"{c},{d.isoformat()},{n},{usd}" for c, d, n, usd in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def event(ts: int, name: str = "") -> TelemetryEvent:
    return TelemetryEvent(name or f"e{ts}", "a", EventType.LOGIN, ts)


def test_records_come_by_time_and_ties_keep_the_file_order() -> None:
    records = [(1, event(30, "x")), (2, event(10)), (3, event(30, "y")), (4, event(20))]
    order = TimeOrder()
    got = [row for row, _ in events_in_time_order(records, order)]
    assert got == [2, 4, 1, 3]
    assert order == TimeOrder(timed=4, untimed=0, resorted=True)


@pytest.mark.parametrize("run_size", [1, 2, 3, 7, 1000])
def test_runs_spilled_to_files_merge_to_the_order_sorted_in_memory(run_size: int) -> None:
    rng = random.Random(run_size)
    records: list[tuple[int, TelemetryEvent | BadEvent]] = [
        (row, event(rng.randrange(20), f"e{row}")) for row in range(1, 200)
    ]
    records[50] = (51, BadEvent("bad_ts", "row 51: ts is required"))
    in_memory = list(events_in_time_order(records))
    spilled = list(events_in_time_order(records, run_size=run_size))
    assert spilled == in_memory
    timed = [r for r in in_memory if not isinstance(r[1], BadEvent)]
    assert timed == sorted(timed, key=lambda r: (r[1].ts_ms, r[0]))  # type: ignore[union-attr]


def test_rejected_records_pass_at_once_with_their_rows() -> None:
    bad = BadEvent("not_json", "row 2: not JSON")
    records = [(1, event(5)), (2, bad), (3, event(1))]
    order = TimeOrder()
    first = next(events_in_time_order(records, order, run_size=1))
    assert first == (2, bad)
    assert order.untimed == 1


def test_a_file_in_time_order_is_not_reported_as_sorted() -> None:
    order = TimeOrder()
    items = [3, 3, 5, 9]
    assert list(in_time_order(items, lambda ts: ts, order, run_size=2)) == items
    assert order == TimeOrder(timed=4, untimed=0, resorted=False)


def test_a_run_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(in_time_order([1], lambda ts: ts, run_size=0))


@pytest.mark.parametrize("sort_run", [[], ["--sort-run", "5"]], ids=["in_memory", "spilled"])
def test_a_file_in_customer_order_replays_as_the_same_file_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sort_run: list[str]
) -> None:
    rows = purchase_log()
    by_customer = write_log(tmp_path / "by_customer.csv", rows)
    by_time = write_log(tmp_path / "by_time.csv", sorted(rows, key=lambda r: r[1]))
    outs = []
    for name, path in (("customer", by_customer), ("time", by_time)):
        out = tmp_path / f"{name}.jsonl"
        args = ["replay", path, "--map", SPEC, "--out", str(out), *sort_run]
        assert main(args) == 0
        outs.append(out.read_bytes())
        err = capsys.readouterr().err
        assert "rejected" not in err
        if name == "customer":
            note = f"replay: sorted {len(rows):,} records by time: the file was not in time order"
            assert note in err
        else:
            assert "sorted" not in err
    assert outs[0] == outs[1]
    accounts = {orjson.loads(line)["account_id"] for line in outs[0].splitlines()}
    assert len(accounts) == CUSTOMERS


def test_rejected_rows_of_a_sorted_file_are_reported_with_their_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "customer,date,cds,usd\n00002,1997-03-01,1,10.00\n00002,1997-13-01,1,10.00\n"
        "00001,1997-01-05,2,20.00\n"
    )
    assert main(["replay", str(path), "--map", SPEC, "--out", str(tmp_path / "o"), "-v"]) == 0
    err = capsys.readouterr().err
    assert f"{path}: bad_ts: row 3: column 'date'" in err
    assert "sorted 2 records by time" in err
    assert "rejected: bad_ts=1" in err


def test_backtest_on_a_file_in_customer_order_scores_every_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = purchase_log(customers=30)
    path = write_log(tmp_path / "log.csv", rows)
    out = tmp_path / "report"
    args = ["backtest", "--events", path, "--map", SPEC, "--at", "1997-10-01"]
    args += ["--horizon", "90", "--churn-if-inactive", "--out", str(out), "--sort-run", "40"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["accounts"] == 30
    assert report["records"] == len(rows) and report["rejected_records"] == 0
    assert "backtest: sorted" in capsys.readouterr().err


def test_explain_reads_a_file_in_customer_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = 86_400_000
    start = 20_454 * day  # 2026-01-01
    records = [
        {"event_id": f"{account}-{n}", "account_id": account, "type": "login", "ts": ts}
        for account in ("acme", "globex")
        for n, ts in enumerate(
            range(start, start + 40 * day, day // 2 if account == "acme" else day)
        )
    ]
    records.append({"type": "tick", "ts": start + 60 * day})
    outputs = []
    for name, ordered in (
        ("by_account", records),
        ("by_time", sorted(records, key=lambda r: r["ts"])),
    ):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in ordered) + b"\n")
        assert main(["explain", "acme", "--events", str(path), "--json"]) == 0
        captured = capsys.readouterr()
        outputs.append(captured.out)
        assert ("sorted" in captured.err) == (name == "by_account")
    assert outputs[0] == outputs[1]
