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
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from scoring.book import AccountBook
from scoring.churn import (
    calibration,
    lift_of_top,
    precision_recall,
    roc_auc,
    roc_points,
    wilson_interval,
)
from scoring.engine import HealthEngine
from scoring.feed import Outcome, feed
from scoring.outputs import OutputEvent
from scoring.profile import ZONES
from telemetry.codec import BadEvent
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

#: events counted by the frequency baseline: the last 30 days before the cutoff
FREQUENCY_DAYS = 30
UNHEALTHY = ("at_risk", "critical")
#: how many accounts each list of named accounts holds
NAMED_ACCOUNTS = 20
EPOCH = date(1970, 1, 1)


class BacktestError(ValueError):
    """Bad labels, dates or options; the message names the file, row and column."""


def day_ms(day: date) -> int:
    return (day - EPOCH).days * MS_PER_DAY


def day_of(epoch_day: int) -> date:
    return EPOCH + timedelta(days=epoch_day)


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
    #: why the score is what it is: the override that set it, else the costliest signal
    reason: str = ""


@dataclass
class History:
    """Per cutoff, every account known then; and every account's event days, for labels
    by inactivity."""

    at: dict[int, list[AccountAt]] = field(default_factory=dict)
    event_days: dict[str, list[int]] = field(default_factory=dict)
    records: int = 0
    rejected: int = 0
    #: the epoch days of the first and the last valid record, ticks included (None: none)
    first_day: int | None = None
    last_day: int | None = None

    def saw_day(self, day: int) -> None:
        """Widen the span of days seen to take in ``day``."""
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if self.last_day is None or day > self.last_day:
            self.last_day = day


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

    def note(account_id: str, outputs: Iterable[OutputEvent]) -> None:
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
                    main_reason(described),
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
        day = event.ts_ms // MS_PER_DAY
        history.saw_day(day)
        while pending and event.ts_ms >= pending[0]:
            picture(pending.pop(0))
        if event.type is EventType.TICK:
            if pending:
                for account_id, out in feed(book, event).outputs:
                    note(account_id, [out])
            continue
        _add_day(days.setdefault(event.account_id, []), day)
        if not pending:
            continue
        fed = feed(book, event)
        if fed.outcome is not Outcome.APPLIED:
            continue
        last_event[event.account_id] = max(event.ts_ms, last_event.get(event.account_id, 0))
        note(event.account_id, [out for _, out in fed.outputs])
    while pending:
        picture(pending.pop(0))
    return history


def _add_day(days: list[int], day: int) -> None:
    """Add ``day`` to an account's sorted event days (events come nearly in order)."""
    if not days or day >= days[-1]:
        days.append(day)
    else:
        days.insert(bisect_left(days, day), day)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def main_reason(described: OutputEvent) -> str:
    """Why an account has its score, from ``HealthEngine.describe``: the override (or the
    finding behind a detector cap) that set the score, else the signal that cost the most
    points (its weight share times the points it lacks), e.g. ``usage_trend 10/100``."""
    return _override_reason(described["overrides"]) or _signal_reason(described["signals"])


def _override_reason(overrides: list[dict[str, Any]]) -> str | None:
    """The last override that moved the score: overrides apply in order, each to the result
    of the one before, so it is the one that set the final score."""
    setter = None
    for o in overrides:
        value, before = o["value"], o["score_before"]
        if value is None:
            continue
        after = min(value, before) if o["effect"] == "cap" else value
        if after != before:
            setter = o
    if setter is None:
        return None
    done = {"cap": "capped at", "set": "set to", "hold": "held at"}.get(
        setter["effect"], setter["effect"]
    )
    if setter["override"] == "detector_cap":
        evidence = setter["evidence"]
        return f"finding {evidence['finding']} ({evidence['severity']}): {done} {setter['value']}"
    return f"{setter['override']}: {done} {setter['value']}"


def _signal_reason(signals: list[dict[str, Any]]) -> str:
    scored = [s for s in signals if s["score"] is not None]
    if not scored:
        return "no signal data"
    costly = max(scored, key=lambda s: s["weight_share"] * (100 - s["score"]))
    return f"{costly['signal']} {costly['score']}/100"


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


def zone_figures(accounts: list[AccountAt], churned: list[int]) -> dict[str, dict[str, Any]]:
    """Per zone the accounts were in (see ``zone_table``)."""
    return zone_table([a.zone for a in accounts], churned)


def zone_table(
    zones: Sequence[str], churned: Sequence[int], keep_empty: bool = False
) -> dict[str, dict[str, Any]]:
    """Per zone, healthy to critical then any other (onboarding) by name: accounts,
    churners, the zone's share of the accounts, its churn rate and that rate's Wilson 95%
    interval. ``keep_empty`` lists the three zones even with no account (rate None)."""
    counts: dict[str, list[int]] = {z: [0, 0] for z in ZONES} if keep_empty else {}
    for zone, outcome in zip(zones, churned, strict=True):
        tally = counts.setdefault(zone, [0, 0])
        tally[0] += 1
        tally[1] += outcome
    order = [z for z in ZONES if z in counts]
    order += sorted(z for z in counts if z not in ZONES)
    table: dict[str, dict[str, Any]] = {}
    for zone in order:
        n, k = counts[zone]
        lo, hi = wilson_interval(k, n)
        table[zone] = {
            "accounts": n,
            "churned": k,
            "share": round(n / len(zones), 4) if zones else None,
            "churn_rate": round(k / n, 4) if n else None,
            "churn_rate_ci": [round(lo, 4), round(hi, 4)],
        }
    return table


def named_accounts(
    accounts: list[AccountAt], churned: list[int], limit: int = NAMED_ACCOUNTS
) -> dict[str, list[dict[str, Any]]]:
    """The accounts an analyst reads by name: the riskiest (lowest score first) and the
    churners the score ranked as safe (highest score first); ties by account id."""
    pairs = list(zip(accounts, churned, strict=True))
    riskiest = sorted(pairs, key=lambda p: (p[0].score, p[0].account_id))
    missed = sorted((p for p in pairs if p[1]), key=lambda p: (-p[0].score, p[0].account_id))
    return {
        "riskiest_accounts": [_named(a, c) for a, c in riskiest[:limit]],
        "churners_ranked_safe": [_named(a, c) for a, c in missed[:limit]],
    }


def _named(account: AccountAt, churned: int) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "score": account.score,
        "zone": account.zone,
        "churned": bool(churned),
        "days_since_event": round(account.days_since_event, 1),
        "reason": account.reason,
    }


def evaluate(
    accounts: list[AccountAt],
    churned: list[int],
    churn_dates: list[date | None],
) -> dict[str, Any]:
    """The report's figures for one set of scored accounts and outcomes."""
    y = np.asarray(churned, dtype=np.float64)
    scores = np.asarray([a.score for a in accounts], dtype=np.float64)
    risk = 100.0 - scores
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
        "zones": zone_figures(accounts, churned),
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


def data_span(history: History, what: str) -> tuple[date, date]:
    """The days of the first and the last valid record; ``what`` names the date asked for."""
    if history.first_day is None or history.last_day is None:
        raise BacktestError(f"{what}: the events hold no valid record")
    return day_of(history.first_day), day_of(history.last_day)


def check_at(
    span: tuple[date, date], at: date, horizon_days: int, by_inactivity: bool
) -> list[str]:
    """Refuse an ``at`` that leaves no record before it or comes after the last record's
    day. Return a warning for a horizon that runs past the data when churn is inactivity,
    which the data cannot show there (a label file may know churn beyond the events)."""
    first, last = span
    runs = f"the data, which runs from {first} to {last}"
    if at < first:
        raise BacktestError(f"--at {at} is before {runs}")
    if at == first:
        raise BacktestError(f"--at {at} is the first day of {runs}: no record comes before it")
    if at > last:
        raise BacktestError(f"--at {at} is after {runs}")
    past = (at - last).days + horizon_days - 1  # the horizon is the days at .. at + horizon - 1
    if not by_inactivity or past <= 0:
        return []
    return [
        f"--at {at} with --horizon {horizon_days}: {past} of the horizon's {horizon_days} days "
        f"lie past the data's last day ({last}); an account silent only because the data ends "
        "counts as churned"
    ]


def _to_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def backtest(
    records: Iterable[tuple[int, TelemetryEvent | BadEvent]],
    engine: HealthEngine,
    at: date,
    horizon_days: int,
    labels: dict[str, date | None] | None,
    on_progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] = _to_stderr,
) -> dict[str, Any]:
    """Replay to ``at``, score every account known then, and judge against churn in the
    ``horizon_days`` after it. Warnings go to ``warn`` and into the report."""
    if horizon_days < 1:
        raise BacktestError(f"--horizon: must be at least 1 day, got {horizon_days}")
    cutoff = day_ms(at)
    history = replay_to_cutoffs(records, engine, [cutoff], on_progress)
    span = data_span(history, f"--at {at}")
    warnings = check_at(span, at, horizon_days, labels is None)
    for message in warnings:
        warn(message)
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
        "data_span": {"first": span[0].isoformat(), "last": span[1].isoformat()},
        "warnings": warnings,
        **report,
        **named_accounts(accounts, churned),
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
