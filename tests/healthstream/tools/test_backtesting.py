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

from healthstream.cli import main
from healthstream.dev.synthetic import Scenario
from healthstream.tools.backtesting import (
    AccountAt,
    load_labels,
    main_reason,
    zone_figures,
)
from healthstream.tools.explain import explain_account
from scoring.churn import wilson_interval
from scoring.profile import ZONES, load_profile
from stream.settings import build_engine, load_settings

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


MS_PER_DAY = 86_400_000


def cutoff_ms(n: int) -> int:
    return (START + timedelta(days=n) - date(1970, 1, 1)).days * MS_PER_DAY


@pytest.fixture(scope="module")
def labelled(history: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """report.json of a backtest at day 120 with a 60-day horizon, churn from the labels."""
    events, labels = history
    out = tmp_path_factory.mktemp("labelled")
    args = ["backtest", "--events", str(events), "--at", day(120), "--horizon", "60"]
    assert main(args + ["--labels", str(labels), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_report_names_the_riskiest_accounts_and_the_churners_ranked_safe(
    history: tuple[Path, Path], labelled: dict
) -> None:
    _, labels = history
    with open(labels) as f:
        churn = {r["account_id"]: r["churned_at"] for r in csv.DictReader(f)}
    horizon_end = START + timedelta(days=180)

    def churned(account: str) -> bool:
        return bool(churn[account]) and date.fromisoformat(churn[account]) <= horizon_end

    riskiest, safe = labelled["riskiest_accounts"], labelled["churners_ranked_safe"]
    assert len(riskiest) == 20 and len(safe) == min(20, labelled["churned"])
    assert [a["score"] for a in riskiest] == sorted(a["score"] for a in riskiest)
    assert [a["score"] for a in safe] == sorted((a["score"] for a in safe), reverse=True)
    for a in riskiest + safe:
        assert set(a) == {"account_id", "score", "zone", "churned", "days_since_event", "reason"}
        assert a["churned"] is churned(a["account_id"])
        assert a["reason"]
    assert all(a["churned"] for a in safe)
    # the riskiest hold the lowest scores, the listed churners the highest of the churners
    bands = labelled["score_distribution"]
    below = min(a["score"] for a in riskiest[-1:]) // 10
    assert sum(bands["stayed"][:below]) + sum(bands["churned"][:below]) < 20
    above = safe[-1]["score"] // 10 + 1
    assert sum(bands["churned"][above:]) < 20


def test_each_named_account_has_the_score_and_reason_that_explain_gives_at_the_date(
    history: tuple[Path, Path], labelled: dict, tmp_path: Path
) -> None:
    events, _ = history
    cutoff = cutoff_ms(120)
    upto, last_event = [], {}
    for line in events.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["ts"] < cutoff or (record["type"] == "tick" and record["ts"] == cutoff):
            upto.append(line)
            if record["type"] != "tick":
                last_event[record["account_id"]] = record["ts"]
    engine = build_engine(load_settings(environ={}))
    named = labelled["riskiest_accounts"] + labelled["churners_ranked_safe"]
    for a in named:
        described, _ = explain_account(upto, a["account_id"], engine)
        assert described is not None
        assert (described["score"], described["zone"]) == (a["score"], a["zone"]), a
        assert a["reason"] == main_reason(described), a
        since = (cutoff - last_event[a["account_id"]]) / MS_PER_DAY
        assert a["days_since_event"] == round(since, 1)
    reasons = {a["reason"] for a in named}
    assert any(re.fullmatch(r"\w+ \d+/100", r) for r in reasons), reasons
    assert any(": " in r for r in reasons), reasons  # some scores were set by an override


def override(name: str, effect: str, value: int | None, before: int, **evidence: str) -> dict:
    return {
        "override": name,
        "effect": effect,
        "value": value,
        "score_before": before,
        "evidence": evidence,
    }


SIGNALS = [
    {"signal": "login_frequency", "score": 80, "weight_share": 0.5},  # costs 10 points
    {"signal": "usage_trend", "score": 10, "weight_share": 0.2},  # costs 18
    {"signal": "nps", "score": None, "weight_share": 0.0},
    {"signal": "feature_adoption", "score": 100, "weight_share": 0.3},
]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ([], "usage_trend 10/100"),
        (
            [
                override(
                    "detector_cap", "cap", 39, 62, finding="usage_drop:logins", severity="red"
                ),
                override("champion_departed", "cap", 40, 39),
            ],
            "finding usage_drop:logins (red): capped at 39",
        ),
        (
            [override("champion_departed", "cap", 40, 70), override("zero_usage", "set", 10, 40)],
            "zero_usage: set to 10",
        ),
        ([override("manual", "hold", 70, 30)], "manual: held at 70"),
        ([override("active_escalation", "cap", 50, 45)], "usage_trend 10/100"),
        ([override("renewal_escalation", "escalate", None, 45)], "usage_trend 10/100"),
    ],
)
def test_main_reason_is_the_override_that_set_the_score_else_the_costliest_signal(
    overrides: list[dict], reason: str
) -> None:
    assert main_reason({"overrides": overrides, "signals": SIGNALS}) == reason


def test_main_reason_without_signal_data() -> None:
    signals = [{"signal": "nps", "score": None, "weight_share": 0.0}]
    assert main_reason({"overrides": [], "signals": signals}) == "no signal data"


def test_zones_come_healthy_to_critical_with_their_share_and_a_wilson_interval(
    labelled: dict,
) -> None:
    zones = labelled["zones"]
    assert list(zones) == [z for z in ZONES if z in zones] + sorted(set(zones) - set(ZONES))
    assert sum(z["share"] for z in zones.values()) == pytest.approx(1, abs=1e-3)
    for z in zones.values():
        assert z["share"] == round(z["accounts"] / labelled["accounts"], 4)
        lo, hi = z["churn_rate_ci"]
        assert 0 <= lo <= z["churn_rate"] <= hi <= 1
        assert [lo, hi] == [round(v, 4) for v in wilson_interval(z["churned"], z["accounts"])]


def test_a_zone_outside_the_three_follows_them() -> None:
    accounts = [
        AccountAt(f"a{i}", 50, zone, {}, 1.0, 3, None)
        for i, zone in enumerate(["onboarding", "critical", "healthy", "critical"])
    ]
    zones = zone_figures(accounts, [0, 1, 0, 0])
    assert list(zones) == ["healthy", "critical", "onboarding"]
    assert zones["critical"] == {
        "accounts": 2,
        "churned": 1,
        "share": 0.5,
        "churn_rate": 0.5,
        "churn_rate_ci": [0.0945, 0.9055],
    }


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (-30, f"--at {day(-30)} is before the data, which runs from {day(0)} to {day(199)}"),
        (0, f"--at {day(0)} is the first day of the data, which runs from {day(0)} to"),
        (200, f"--at {day(200)} is after the data, which runs from {day(0)} to {day(199)}"),
        (400, f"--at {day(400)} is after the data, which runs from {day(0)} to {day(199)}"),
    ],
)
def test_an_at_outside_the_data_is_an_error_that_names_its_span(
    history: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    at: int,
    message: str,
) -> None:
    events, labels = history
    args = ["backtest", "--events", str(events), "--at", day(at), "--horizon", "30"]
    assert main(args + ["--labels", str(labels), "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_an_empty_history_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    args = ["backtest", "--events", str(events), "--at", "2026-03-01", "--horizon", "30"]
    assert main(args + ["--churn-if-inactive", "--out", str(tmp_path / "o")]) == 2
    assert "--at 2026-03-01: the events hold no valid record" in capsys.readouterr().err


def test_a_horizon_past_the_data_is_warned_when_churn_is_inactivity(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history

    def backtest(at: int, out: str, *churn: str) -> int:
        args = ["backtest", "--events", str(events), "--horizon", "30", "--at", day(at)]
        return main(args + [*churn, "--out", str(tmp_path / out)])

    assert backtest(190, "a", "--churn-if-inactive") == 0
    warning = f"20 of the horizon's 30 days lie past the data's last day ({day(199)})"
    assert warning in capsys.readouterr().err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["data_span"] == {"first": day(0), "last": day(199)}
    assert len(report["warnings"]) == 1 and warning in report["warnings"][0]
    # a horizon ending on the last day, or churn from a label file, is not warned about
    assert backtest(170, "b", "--churn-if-inactive") == 0
    assert backtest(190, "c", "--labels", str(labels)) == 0
    assert "warning" not in capsys.readouterr().err
    for out in ("b", "c"):
        assert json.loads((tmp_path / out / "report.json").read_text())["warnings"] == []
