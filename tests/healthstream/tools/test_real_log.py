"""The CDNOW purchase log as shipped (customer order, 1997-98 dates: see data/README.md)
goes through backtest and calibrate as a user would run them, with nothing refused."""

from __future__ import annotations

import json
from pathlib import Path

from healthstream.cli import main

LOG = Path(__file__).resolve().parents[3] / "data" / "cdnow-even.csv"
MAP = "account_id=customer,ts=date,type=const:value_action,value=cds"
ZONE_ORDER = ["healthy", "at_risk", "critical"]


def test_a_real_export_backtests_as_shipped(tmp_path, capsys) -> None:
    out = tmp_path / "bt"
    code = main(
        ["backtest", "--events", str(LOG), "--map", MAP, "--churn-if-inactive"]
        + ["--at", "1997-12-31", "--horizon", "90", "--out", str(out)]
    )
    assert code == 0
    assert "sorted 34,355 records by time" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["rejected_records"] == 0
    assert report["accounts"] == 11_785  # every customer who bought before the date
    assert report["data_span"] == {"first": "1997-01-01", "last": "1998-06-30"}
    zones = report["zones"]
    assert list(zones) == ZONE_ORDER
    rates = [zones[z]["churn_rate"] for z in ZONE_ORDER]
    assert rates == sorted(rates)  # the zones rank churn
    html = (out / "report.html").read_text()
    assert report["churners_ranked_safe"][0]["account_id"] in html


def test_a_real_export_calibrates_and_reports_both_profiles(tmp_path) -> None:
    out = tmp_path / "cal"
    code = main(
        ["calibrate", "--events", str(LOG), "--map", MAP, "--churn-if-inactive"]
        + ["--train-at", "1997-09-30", "--test-at", "1997-12-31", "--horizon", "90"]
        + ["--out", str(out)]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    test = report["test"]
    for key in ("original", "calibrated"):
        assert 0.5 < test[key]["auc"] <= 1.0
    assert test["original"]["baselines"]["recency"]["auc"] > 0.5
    assert report["fit"]["l2_chosen_by"] == "cross-validation"
    assert (out / "calibrated.toml").exists()
