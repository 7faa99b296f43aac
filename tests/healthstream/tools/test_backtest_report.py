"""The backtest page that `healthstream backtest` writes, parsed back: the zones in their
order, the named accounts, the data's span and the warnings."""

from __future__ import annotations

import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from healthstream.cli import main
from healthstream.dev.synthetic import Scenario

START = Scenario().start


class Page(HTMLParser):
    """The tables by id (header row first, then each row's cell texts), the h2 headings, the
    paragraphs by class, and every paragraph's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.headings: list[str] = []
        self.paragraphs: list[tuple[str | None, str]] = []
        self._table: list[list[str]] | None = None
        self._text: list[str] | None = None
        self._class: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attributes.get("id") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th", "h2", "p"):
            self._text, self._class = [], attributes.get("class")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table is not None and self._text is not None:
            self._table[-1].append("".join(self._text))
        elif tag == "h2" and self._text is not None:
            self.headings.append("".join(self._text))
        elif tag == "p" and self._text is not None:
            self.paragraphs.append((self._class, "".join(self._text)))
        if tag in ("td", "th", "h2", "p"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("history")
    events, labels = where / "events.jsonl", where / "labels.csv"
    args = ["generate", "--accounts", "200", "--days", "200", "--intensity", "0.3"]
    args += ["--churn-in-span", "--out", str(events), "--labels", str(labels)]
    assert main(args) == 0
    return events, labels


def run(history: tuple[Path, Path], out: Path, at: int, horizon: int, *churn: str) -> tuple:
    events, _ = history
    args = ["backtest", "--events", str(events), "--at", day(at), "--horizon", str(horizon)]
    assert main(args + [*churn, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    return report, Page((out / "report.html").read_text())


@pytest.fixture(scope="module")
def labelled(history: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    labels = str(history[1])
    return run(history, tmp_path_factory.mktemp("page"), 120, 60, "--labels", labels)


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def test_the_zones_table_lists_healthy_to_critical_with_share_and_interval(
    labelled: tuple,
) -> None:
    report, page = labelled
    header, *rows = page.tables["zones"]
    assert header == [
        "zone",
        "accounts",
        "share",
        "churned",
        "churn rate",
        "churn rate, 95% interval",
    ]
    assert [r[0] for r in rows] == list(report["zones"])
    assert [r[0] for r in rows][:3] == ["healthy", "at_risk", "critical"]
    for zone, accounts, share, churned, rate, interval in rows:
        z = report["zones"][zone]
        assert (int(accounts), int(churned)) == (z["accounts"], z["churned"])
        assert share == percent(z["share"]) and rate == percent(z["churn_rate"])
        lo, hi = z["churn_rate_ci"]
        assert interval == f"{percent(lo)} to {percent(hi)}"


def test_the_page_names_the_riskiest_accounts_and_the_churners_ranked_safe(
    labelled: tuple,
) -> None:
    report, page = labelled
    assert "The riskiest accounts (lowest score first)" in page.headings
    assert "The churners the score ranked as safe (highest score first)" in page.headings
    for key in ("riskiest_accounts", "churners_ranked_safe"):
        header, *rows = page.tables[key]
        assert header == [
            "account",
            "score",
            "zone",
            "churned",
            "days since last event",
            "main reason",
        ]
        expected = [
            [
                a["account_id"],
                str(a["score"]),
                a["zone"],
                "yes" if a["churned"] else "no",
                str(a["days_since_event"]),
                a["reason"],
            ]
            for a in report[key]
        ]
        assert rows == expected and len(rows) == 20
    safe = page.tables["churners_ranked_safe"][1:]
    assert {r[3] for r in safe} == {"yes"}


def test_the_page_states_the_data_span(labelled: tuple) -> None:
    report, page = labelled
    assert report["data_span"] == {"first": day(0), "last": day(199)}
    assert any(f"The data runs from {day(0)} to {day(199)}." in text for _, text in page.paragraphs)
    assert not [text for cls, text in page.paragraphs if cls == "warning"]


def test_the_page_shows_a_horizon_past_the_data(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, page = run(history, tmp_path, 185, 30, "--churn-if-inactive")
    warnings = [text for cls, text in page.paragraphs if cls == "warning"]
    assert warnings == report["warnings"]
    assert len(warnings) == 1 and "15 of the horizon's 30 days lie past" in warnings[0]
    assert warnings[0] in capsys.readouterr().err
