"""`healthstream backtest` and `calibrate` through the command line, on a synthetic history
whose churners are known."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, timedelta
from pathlib import Path
from xml.etree import ElementTree

import orjson
import pytest

from scoring.profile import load_profile
from stream.backtesting import load_labels
from stream.cli import main
from stream.synthetic import Scenario

SCENARIO = Scenario(accounts=200, days=200, intensity=0.3, churn_in_span=True)
START = SCENARIO.start


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The events and the labels, written by `healthstream generate`."""
    where = tmp_path_factory.mktemp("history")
    events, labels = where / "events.jsonl", where / "labels.csv"
    args = ["generate", "--accounts", "200", "--days", "200", "--intensity", "0.3"]
    args += ["--churn-in-span", "--out", str(events), "--labels", str(labels)]
    assert main(args) == 0
    return events, labels


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


def test_backtest_writes_the_report_with_its_plots(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    out = tmp_path / "report"
    args = ["backtest", "--events", str(events), "--at", day(120), "--horizon", "60"]
    assert main(args + ["--labels", str(labels), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    with open(labels) as f:
        churn = {r["account_id"]: r["churned_at"] for r in csv.DictReader(f)}
    cutoff = START + timedelta(days=120)
    before = sum(1 for d in churn.values() if d and date.fromisoformat(d) <= cutoff)
    inside = sum(
        1 for d in churn.values() if d and cutoff < date.fromisoformat(d) <= cutoff + timedelta(60)
    )
    assert report["excluded_churned_before"] == before
    assert report["unlabelled_accounts"] == 0
    assert report["accounts"] == SCENARIO.accounts - before
    assert report["churned"] == inside > 0
    assert sum(z["accounts"] for z in report["zones"].values()) == report["accounts"]
    assert sum(z["churned"] for z in report["zones"].values()) == inside
    for key in ("auc", "critical", "top_decile_lift", "lead_time", "calibration"):
        assert key in report
    assert set(report["baselines"]) == {"recency", "frequency"}
    assert 0.5 < report["auc"] <= 1.0
    html = (out / "report.html").read_text()
    for plot in ('id="distribution"', 'id="roc"', 'id="calibration"'):
        assert plot in html
    assert html.count("<svg") == 3 and "<polyline" in html
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ElementTree.fromstring(svg)  # each plot is well-formed SVG
    assert f"AUC {report['auc']}" in capsys.readouterr().err


def test_churn_by_inactivity_counts_accounts_with_no_event_in_the_horizon(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    events, _ = history
    cutoff = (START + timedelta(days=150) - date(1970, 1, 1)).days * 86_400_000
    end = cutoff + 30 * 86_400_000
    seen_before, active_after = set(), set()
    for line in events.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["type"] == "tick":
            continue
        if record["ts"] < cutoff:
            seen_before.add(record["account_id"])
        elif record["ts"] < end:
            active_after.add(record["account_id"])
    out = tmp_path / "inactive"
    args = ["backtest", "--events", str(events), "--at", day(150), "--horizon", "30"]
    assert main(args + ["--churn-if-inactive", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == "inactivity"
    assert report["accounts"] == len(seen_before)
    assert report["churned"] == len(seen_before - active_after) > 0


def test_calibrated_profile_beats_both_baselines_at_the_later_date(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    events, labels = history
    out = tmp_path / "calibration"
    args = ["calibrate", "--events", str(events), "--labels", str(labels), "--horizon", "50"]
    args += ["--train-at", day(100), "--test-at", day(150), "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    test = report["test"]
    calibrated = test["calibrated"]["auc"]
    baselines = test["calibrated"]["baselines"]
    assert calibrated > baselines["recency"]["auc"]
    assert calibrated > baselines["frequency"]["auc"]
    # the baselines are the same accounts and outcomes for both profiles
    assert test["original"]["baselines"]["recency"]["auc"] == baselines["recency"]["auc"]
    profile = load_profile(out / "calibrated.toml")
    assert profile.name == "default_calibrated"
    weights = {c.name: c.weight for c in profile.categories}
    assert weights == report["fit"]["category_weights"]
    assert sum(weights.values()) == pytest.approx(100, abs=0.5)
    # a signal whose points rose with churn gets no weight
    for c in report["fit"]["coefficients"]:
        if c["coefficient"] >= 0:
            assert c["weight"] == 0, c
        elif c["coefficient"] < -0.1:
            assert c["weight"] > 0, c
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 3 and "calibrated" in html


def test_calibrate_never_trains_and_tests_on_one_period(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    args = ["calibrate", "--events", str(events), "--labels", str(labels), "--horizon", "60"]
    args += ["--train-at", day(100), "--test-at", day(150), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "training and testing would share a period" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account_id,churned_at\na,2026-02-30\n", "row 2: column 'churned_at': '2026-02-30'"),
        ("account_id,churned_at\na,\nb,2026-03-01x\n", "row 3: column 'churned_at': '2026-03-01x'"),
        ("account_id,churned\na,\n", "column 'churned_at' is not in the header"),
        ("account_id,churned_at\na,\n,2026-01-01\n", "row 3: column 'account_id' is empty"),
        ("account_id,churned_at\na,\na,2026-01-01\n", "row 3: account 'a' is labelled twice"),
    ],
)
def test_bad_label_files_name_the_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    args = ["backtest", "--events", str(events), "--at", "2026-03-01", "--horizon", "30"]
    assert main(args + ["--labels", str(labels), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_churn_dates_may_carry_a_time(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("account_id,churned_at\na,2026-03-01T17:45:00Z\nb,2026-03-02\nc,\n")
    assert load_labels(str(labels)) == {"a": date(2026, 3, 1), "b": date(2026, 3, 2), "c": None}


def test_backtest_of_a_mapped_csv_equals_the_same_events_in_the_contract(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    kinds = {"login", "value_action", "meeting_attended", "meeting_missed", "invoice_paid"}
    rows, contract = ["customer,when,what,n,who"], []
    for line in events.read_bytes().splitlines():
        r = orjson.loads(line)
        if r["type"] in kinds:
            r.pop("attrs", None)
            contract.append(orjson.dumps(r))
            rows.append(
                f"{r['account_id']},{r['ts']},{r['type']},{r['value']},{r.get('user_id', '')}"
            )
    (tmp_path / "export.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "export.jsonl").write_bytes(b"\n".join(contract) + b"\n")
    spec = "account_id=customer,ts=when,type=what,value=n,user_id=who"
    reports = []
    for name, extra in (("export.csv", ["--map", spec]), ("export.jsonl", [])):
        out = tmp_path / f"out-{name}"
        args = ["backtest", "--events", str(tmp_path / name), "--at", day(120)]
        args += ["--horizon", "60", "--labels", str(labels), "--out", str(out), *extra]
        assert main(args) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    mapped, native = reports
    for key in ("accounts", "churned", "auc", "zones", "baselines", "lead_time"):
        assert mapped[key] == native[key], key
    bad = ["backtest", "--events", str(tmp_path / "export.csv"), "--at", day(120)]
    bad += ["--horizon", "60", "--labels", str(labels), "--out", str(tmp_path / "x")]
    assert main(bad + ["--map", "account_id=client,ts=when,type=what"]) == 2
    assert "column 'client' is not in the header" in capsys.readouterr().err
