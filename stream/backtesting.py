"""Backtest the score against churn: replay history to a date, score every account, and see
how the scores ranked the accounts that churned in the horizon after it.

The replay is the same core as the stream's, with no broker. Churn comes from a label file
(``account_id,churned_at``) or from inactivity (no event in the horizon). Two baselines are
in every report, so a score that does not beat the simplest rules shows it: recency (days
since the account's last event) and frequency (its events in the last 30 days).
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from scoring.book import AccountBook
from scoring.churn import calibration, lift_of_top, precision_recall, roc_auc, roc_points
from scoring.engine import DuplicateEvent, EventTooOld, HealthEngine
from stream.codec import BadEvent
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

#: events counted by the frequency baseline: the last 30 days before the cutoff
FREQUENCY_DAYS = 30
UNHEALTHY = ("at_risk", "critical")


class BacktestError(ValueError):
    """Bad labels, dates or options; the message names the file, row and column."""


def day_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * MS_PER_DAY


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BacktestError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def churn_day(text: str, what: str) -> date:
    """A date, or the day of an ISO timestamp (exports often give churn with a time)."""
    if len(text) <= 10:
        return parse_day(text, what)
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise BacktestError(
            f"{what}: {text!r} is not a date (YYYY-MM-DD) or a timestamp (YYYY-MM-DDTHH:MM:SS)"
        ) from None


def load_labels(path: str) -> dict[str, date | None]:
    """``account_id,churned_at`` rows: the churn date, or empty for an account that stayed."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read labels: {exc.strerror}") from None
    labels: dict[str, date | None] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("account_id", "churned_at") if c not in (reader.fieldnames or [])]
        if missing:
            raise BacktestError(
                f"{path}: column {missing[0]!r} is not in the header "
                f"(expected account_id,churned_at; got {','.join(reader.fieldnames or [])})"
            )
        for row, record in enumerate(reader, 2):
            account = (record["account_id"] or "").strip()
            if not account:
                raise BacktestError(f"{path}: row {row}: column 'account_id' is empty")
            if account in labels:
                raise BacktestError(f"{path}: row {row}: account {account!r} is labelled twice")
            churned = (record["churned_at"] or "").strip()
            labels[account] = (
                churn_day(churned, f"{path}: row {row}: column 'churned_at'") if churned else None
            )
    return labels


@dataclass
class AccountAt:
    """One account as the engine saw it at a cutoff."""

    account_id: str
    score: int
    zone: str
    signals: dict[str, int | None]
    days_since_event: float
    events_recent: int
    #: when its current stretch out of healthy began (None: healthy now)
    unhealthy_since_ms: int | None


@dataclass
class History:
    """Per cutoff, every account known then; and every account's event days, for labels
    by inactivity."""

    at: dict[int, list[AccountAt]] = field(default_factory=dict)
    event_days: dict[str, list[int]] = field(default_factory=dict)
    records: int = 0
    rejected: int = 0


def replay_to_cutoffs(
    records: Iterable[tuple[int, TelemetryEvent | BadEvent]],
    engine: HealthEngine,
    cutoffs: list[int],
    on_progress: Callable[[int], None] | None = None,
) -> History:
    """Replay events in order, and at each cutoff (epoch ms) advance every account to it
    and take its picture. Events after the last cutoff are only noted by day."""
    book = AccountBook(engine)
    history = History()
    pending = sorted(cutoffs)
    unhealthy: dict[str, int | None] = {}
    last_event: dict[str, int] = {}
    days = history.event_days

    def note(account_id: str, outputs: Iterable[dict[str, Any]]) -> None:
        for out in outputs:
            if out["kind"] != "score_changed":
                continue
            if out["zone"] in UNHEALTHY:
                if unhealthy.get(account_id) is None:
                    unhealthy[account_id] = _ms(out["event_time"])
            else:
                unhealthy[account_id] = None

    def picture(cutoff: int) -> None:
        for account_id, output in book.tick(cutoff, list(book.states))[0]:
            note(account_id, [output])
        first_recent = cutoff // MS_PER_DAY - FREQUENCY_DAYS
        accounts = []
        for account_id in book.states:
            described = engine.describe(account_id, book.state(account_id))
            event_days = days[account_id]
            recent = len(event_days) - bisect_left(event_days, first_recent)
            accounts.append(
                AccountAt(
                    account_id,
                    described["score"],
                    described["zone"],
                    {s["signal"]: s["score"] for s in described["signals"]},
                    (cutoff - last_event[account_id]) / MS_PER_DAY,
                    recent,
                    unhealthy.get(account_id),
                )
            )
        history.at[cutoff] = accounts

    for _, event in records:
        history.records += 1
        if on_progress is not None and history.records % 4096 == 0:
            on_progress(history.records)
        if isinstance(event, BadEvent):
            history.rejected += 1
            continue
        while pending and event.ts_ms >= pending[0]:
            picture(pending.pop(0))
        if event.type is EventType.TICK:
            if pending:
                for account_id, out in book.tick(event.ts_ms, list(book.states))[0]:
                    note(account_id, [out])
            continue
        day = event.ts_ms // MS_PER_DAY
        seen = days.setdefault(event.account_id, [])
        if not seen or day >= seen[-1]:
            seen.append(day)
        else:
            seen.insert(bisect_left(seen, day), day)
        if not pending:
            continue
        try:
            outputs = book.apply(event)
        except (DuplicateEvent, EventTooOld):
            continue
        last_event[event.account_id] = max(event.ts_ms, last_event.get(event.account_id, 0))
        note(event.account_id, outputs)
    while pending:
        picture(pending.pop(0))
    return history


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def churn_outcomes(
    accounts: list[AccountAt],
    cutoff: int,
    horizon_days: int,
    labels: dict[str, date | None] | None,
    event_days: dict[str, list[int]],
) -> tuple[list[AccountAt], list[int], list[date | None], int]:
    """The accounts to judge, whether each churned in the horizon (1/0), its churn date,
    and how many were left out for having churned before the cutoff."""
    cutoff_day = cutoff // MS_PER_DAY
    kept: list[AccountAt] = []
    churned: list[int] = []
    dates: list[date | None] = []
    before = 0
    for account in accounts:
        if labels is None:
            seen = event_days.get(account.account_id, [])
            i = bisect_left(seen, cutoff_day)
            active = i < len(seen) and seen[i] < cutoff_day + horizon_days
            kept.append(account)
            churned.append(0 if active else 1)
            dates.append(None)
            continue
        when = labels.get(account.account_id)
        if when is not None and day_ms(when) <= cutoff:
            before += 1
            continue
        kept.append(account)
        inside = when is not None and day_ms(when) <= cutoff + horizon_days * MS_PER_DAY
        churned.append(1 if inside else 0)
        dates.append(when if inside else None)
    return kept, churned, dates, before


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def evaluate(
    accounts: list[AccountAt],
    churned: list[int],
    churn_dates: list[date | None],
) -> dict[str, Any]:
    """The report's figures for one set of scored accounts and outcomes."""
    y = np.asarray(churned, dtype=np.float64)
    scores = np.asarray([a.score for a in accounts], dtype=np.float64)
    risk = 100.0 - scores
    zones: dict[str, dict[str, Any]] = {}
    for account, outcome in zip(accounts, churned, strict=True):
        z = zones.setdefault(account.zone, {"accounts": 0, "churned": 0})
        z["accounts"] += 1
        z["churned"] += outcome
    for z in zones.values():
        z["churn_rate"] = round(z["churned"] / z["accounts"], 4)
    critical = np.asarray([a.zone == "critical" for a in accounts], dtype=np.float64)
    precision, recall = precision_recall(critical, y)
    leads = []
    for account, when in zip(accounts, churn_dates, strict=True):
        if when is not None and account.unhealthy_since_ms is not None:
            leads.append((day_ms(when) - account.unhealthy_since_ms) / MS_PER_DAY)
    churners = int(y.sum())
    recency = np.asarray([a.days_since_event for a in accounts], dtype=np.float64)
    frequency = -np.asarray([a.events_recent for a in accounts], dtype=np.float64)
    return {
        "accounts": len(accounts),
        "churned": churners,
        "churn_rate": _rounded(churners / len(accounts)) if accounts else None,
        "auc": _rounded(roc_auc(risk, y)),
        "zones": dict(sorted(zones.items())),
        "critical": {"precision": _rounded(precision), "recall": _rounded(recall)},
        "top_decile_lift": _rounded(lift_of_top(risk, y)),
        "lead_time": {
            "churners_flagged_before_churn": len(leads),
            "churners": churners,
            "median_days": _rounded(median(leads), 1) if leads else None,
            "min_days": _rounded(min(leads), 1) if leads else None,
            "max_days": _rounded(max(leads), 1) if leads else None,
        },
        "baselines": {
            "recency": {"auc": _rounded(roc_auc(recency, y)), "roc": roc_points(recency, y)},
            "frequency": {
                "auc": _rounded(roc_auc(frequency, y)),
                "roc": roc_points(frequency, y),
            },
        },
        "roc": roc_points(risk, y),
        "calibration": [b.__dict__ for b in calibration(risk / 100.0, y)],
        "score_distribution": _distribution(scores, y),
    }


def _distribution(scores: np.ndarray, y: np.ndarray) -> dict[str, list[int]]:
    """Accounts per band of 10 points (0-9, …, 90-100), for stayers and churners."""
    bands = np.clip(scores // 10, 0, 9).astype(int)
    return {
        "stayed": [int(((bands == b) & (y == 0)).sum()) for b in range(10)],
        "churned": [int(((bands == b) & (y == 1)).sum()) for b in range(10)],
    }


def backtest(
    records: Iterable[tuple[int, TelemetryEvent | BadEvent]],
    engine: HealthEngine,
    at: date,
    horizon_days: int,
    labels: dict[str, date | None] | None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay to ``at``, score every account known then, and judge against churn in the
    ``horizon_days`` after it."""
    if horizon_days < 1:
        raise BacktestError(f"--horizon: must be at least 1 day, got {horizon_days}")
    cutoff = day_ms(at)
    history = replay_to_cutoffs(records, engine, [cutoff], on_progress)
    accounts, churned, dates, before = churn_outcomes(
        history.at[cutoff], cutoff, horizon_days, labels, history.event_days
    )
    if not accounts:
        raise BacktestError(f"--at {at}: no account had an event before this date")
    # an account the label file does not name counts as one that stayed: say how many
    unlabelled = 0 if labels is None else sum(1 for a in accounts if a.account_id not in labels)
    report = evaluate(accounts, churned, dates)
    return {
        "at": at.isoformat(),
        "horizon_days": horizon_days,
        "labels": "file" if labels is not None else "inactivity",
        "profile": engine.profile.name,
        "config_version": engine.version,
        "excluded_churned_before": before,
        "unlabelled_accounts": unlabelled,
        "records": history.records,
        "rejected_records": history.rejected,
        **report,
    }


def write_report(report: dict[str, Any], out_dir: str | Path, render: Callable[..., str]) -> Path:
    """``report.json`` and ``report.html`` in ``out_dir``; returns the directory."""
    import orjson

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    (out / "report.json").write_bytes(text + b"\n")
    (out / "report.html").write_text(render(report))
    return out
