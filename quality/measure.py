"""Figures from the outputs: false alarms on steady accounts, detection and memory of changes.

Each account's outputs are folded, in order, into an :class:`AccountTrace`: the picture every
``score_changed`` left (score, zone, findings by key with their severity), the zone changes,
the findings and overrides turning on and off, and the alerts. The figures read the traces:

- *flagged*: a finding of severity yellow or red, or the zone at risk or critical;
- *noted*: any finding at all (monitor included), or the zone at risk or critical;
- a *flip*: a finding or an override that turns on and off, or off and on, within 24 h, or a
  zone change undone within 24 h.

Rates are per 100 account-months of 30.44 days; shares are fractions of the accounts.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from quality.generator import LASTING_KINDS, AccountPlan, Dataset, Kind
from windows.telemetry import MS_PER_DAY

__all__ = [
    "AccountTrace",
    "Picture",
    "TraceSink",
    "change_figures",
    "profile_figures",
    "steady_figures",
]

SEVERE = frozenset({"yellow", "red"})
NOT_HEALTHY = frozenset({"at_risk", "critical"})
SEVERITY_RANK = {"monitor": 1, "yellow": 2, "red": 3}
FLIP_MS = MS_PER_DAY
ACCOUNT_MONTH_DAYS = 30.44
#: steady accounts' false alarms count from this day index on: the warm-up is excluded
WARMUP_DAYS = 100
DETECTION_DAYS = 21
CRITICAL_DAYS = 14
#: a dip lasts 10 days; what it raises is counted until four weeks after it ends
DIP_WATCH_DAYS = 10 + 28
WEEK_MS = 7 * MS_PER_DAY

Edge = tuple[int, str, bool]  # (time, key, turned on)


def output_ms(output: Mapping[str, Any]) -> int:
    """An output's ``event_time`` as epoch milliseconds."""
    return int(datetime.fromisoformat(str(output["event_time"])).timestamp() * 1000)


#: the stages of one drop record (see scoring.detectors): a drop that escalates from
#: single_drop to drop_no_recovery is the same finding growing more severe, not one finding
#: turning off and another on
_DROP_STAGES = {"single_drop": "drop", "drop_no_recovery": "drop"}


def finding_key(finding: Mapping[str, Any]) -> str:
    detector = str(finding["detector"])
    detector = _DROP_STAGES.get(detector, detector)
    series = finding.get("series")
    return detector if series is None else f"{detector}:{series}"


@dataclass(frozen=True, slots=True)
class Picture:
    """The account as one ``score_changed`` left it."""

    t_ms: int
    score: int
    zone: str
    findings: Mapping[str, str]

    @property
    def flagged(self) -> bool:
        return self.zone in NOT_HEALTHY or any(s in SEVERE for s in self.findings.values())

    @property
    def noted(self) -> bool:
        return self.zone in NOT_HEALTHY or bool(self.findings)

    @property
    def red(self) -> bool:
        return "red" in self.findings.values()

    @property
    def yellow(self) -> bool:
        return "yellow" in self.findings.values()


@dataclass
class AccountTrace:
    """What one account's outputs said over time, folded in the order they came."""

    pictures: list[Picture] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    alerts: list[tuple[int, str, str]] = field(default_factory=list)
    zone_changes: list[tuple[int, str, str]] = field(default_factory=list)
    finding_edges: list[Edge] = field(default_factory=list)
    #: (time, key, severity): a finding reaching yellow or red from below or from nothing
    onsets: list[tuple[int, str, str]] = field(default_factory=list)
    override_edges: list[Edge] = field(default_factory=list)

    def add(self, output: Mapping[str, Any]) -> None:
        kind = output.get("kind")
        if kind == "score_changed":
            self._picture(output)
        elif kind == "alert":
            self.alerts.append((output_ms(output), str(output["alert"]), str(output["severity"])))
        elif kind in ("override_applied", "override_cleared"):
            on = kind == "override_applied"
            self.override_edges.append((output_ms(output), str(output["override"]), on))

    def _picture(self, output: Mapping[str, Any]) -> None:
        t_ms = output_ms(output)
        findings = {finding_key(f): str(f["severity"]) for f in output.get("detectors", [])}
        picture = Picture(t_ms, int(output["score"]), str(output["zone"]), findings)
        before = self.pictures[-1] if self.pictures else None
        old = before.findings if before is not None else {}
        if before is not None and before.zone != picture.zone:
            self.zone_changes.append((t_ms, before.zone, picture.zone))
        for key in old.keys() - findings.keys():
            self.finding_edges.append((t_ms, key, False))
        for key, severity in findings.items():
            if key not in old:
                self.finding_edges.append((t_ms, key, True))
            was = SEVERITY_RANK.get(old.get(key, ""), 0)
            if severity in SEVERE and SEVERITY_RANK[severity] > was:
                self.onsets.append((t_ms, key, severity))
        self.pictures.append(picture)
        self.times.append(t_ms)

    def at(self, t_ms: int) -> Picture | None:
        """The picture in force at ``t_ms`` (outputs at ``t_ms`` included)."""
        i = bisect.bisect_right(self.times, t_ms)
        return self.pictures[i - 1] if i else None

    def first(self, start_ms: int, end_ms: int, test: Callable[[Picture], bool]) -> int | None:
        """The first time in ``[start_ms, end_ms]`` at which the picture passes ``test``."""
        current = self.at(start_ms)
        if current is not None and test(current):
            return start_ms
        i = bisect.bisect_right(self.times, start_ms)
        for picture in self.pictures[i:]:
            if picture.t_ms > end_ms:
                break
            if test(picture):
                return picture.t_ms
        return None


class TraceSink:
    """A sink that folds each account's outputs into its trace as they are delivered."""

    def __init__(self) -> None:
        self.traces: dict[str, AccountTrace] = {}
        self.outputs = 0

    def deliver(self, key: str, event: Mapping[str, Any]) -> None:
        trace = self.traces.get(key)
        if trace is None:
            trace = self.traces[key] = AccountTrace()
        trace.add(event)
        self.outputs += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def edge_flips(edges: Iterable[Edge], since_ms: int) -> int:
    """A key turning on and off (or off and on) within 24 h, the second turn from ``since_ms``."""
    last: dict[str, tuple[int, bool]] = {}
    flips = 0
    for t_ms, key, on in edges:
        before = last.get(key)
        if before is not None and before[1] != on and since_ms <= t_ms <= before[0] + FLIP_MS:
            flips += 1
        last[key] = (t_ms, on)
    return flips


def zone_flips(changes: Sequence[tuple[int, str, str]], since_ms: int) -> int:
    """Zone changes undone within 24 h (A to B, then B to A), the undoing from ``since_ms``."""
    flips = 0
    for (t1, a, b), (t2, c, d) in zip(changes, changes[1:], strict=False):
        if b == c and d == a and t2 - t1 <= FLIP_MS and t2 >= since_ms:
            flips += 1
    return flips


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _rate(count: int, months: float) -> float | None:
    return round(100 * count / months, 2) if months else None


def flag_onsets_in(trace: AccountTrace, since_ms: int, until_ms: int) -> int:
    """Times in ``[since_ms, until_ms)`` at which the account became flagged from unflagged."""
    onsets, was = 0, False
    for picture in trace.pictures:
        now = picture.flagged
        onsets += now and not was and since_ms <= picture.t_ms < until_ms
        was = now
    return onsets


def steady_figures(traces: Sequence[AccountTrace], since_ms: int, until_ms: int) -> dict[str, Any]:
    """False alarms of accounts whose usage never changes, counted in ``[since_ms, until_ms)``."""
    months = len(traces) * (until_ms - since_ms) / MS_PER_DAY / ACCOUNT_MONTH_DAYS

    def within(t_ms: int) -> bool:
        return since_ms <= t_ms < until_ms

    alerts = [sum(within(a[0]) for a in trace.alerts) for trace in traces]
    red = sum(within(t) and s == "red" for trace in traces for t, _, s in trace.onsets)
    yellow = sum(within(t) and s == "yellow" for trace in traces for t, _, s in trace.onsets)
    exits = sum(
        within(t) and a == "healthy" and b in NOT_HEALTHY
        for trace in traces
        for t, a, b in trace.zone_changes
    )
    flag_onsets = sum(flag_onsets_in(trace, since_ms, until_ms) for trace in traces)
    flips = {
        "findings": sum(edge_flips(tr.finding_edges, since_ms) for tr in traces),
        "zones": sum(zone_flips(tr.zone_changes, since_ms) for tr in traces),
        "overrides": sum(edge_flips(tr.override_edges, since_ms) for tr in traces),
    }
    noons = range(since_ms + MS_PER_DAY // 2, until_ms, MS_PER_DAY)
    seen = [p for trace in traces for t in noons if (p := trace.at(t)) is not None]
    return {
        "accounts": len(traces),
        "account_months": round(months, 1),
        "alerts_per_100_account_months": _rate(sum(alerts), months),
        "red_onsets_per_100_account_months": _rate(red, months),
        "yellow_onsets_per_100_account_months": _rate(yellow, months),
        "exits_from_healthy_per_100_account_months": _rate(exits, months),
        "flag_onsets_per_100_account_months": _rate(flag_onsets, months),
        "flips_within_24h_per_100_account_months": _rate(sum(flips.values()), months),
        "flips_within_24h": flips,
        "alerts": sum(alerts),
        "accounts_with_an_alert": _share(sum(n > 0 for n in alerts), len(traces)),
        "share_of_days_flagged": _share(sum(p.flagged for p in seen), len(seen)),
        "median_score": _median([p.score for p in seen]),
    }


def change_figures(kind: Kind, cases: Sequence[tuple[AccountTrace, int]]) -> dict[str, Any]:
    """Detection and memory of one kind of change; a case is a trace and its change time."""
    total = len(cases)
    day = MS_PER_DAY
    delays = [
        (t - c) / day
        for trace, c in cases
        if (t := trace.first(c, c + DETECTION_DAYS * day, _flagged)) is not None
    ]
    noted = sum(trace.first(c, c + DETECTION_DAYS * day, _noted) is not None for trace, c in cases)
    figures: dict[str, Any] = {
        "accounts": total,
        "flagged_at_change": _share(sum(_flagged_at(tr, c) for tr, c in cases), total),
        "detected_within_21d": _share(len(delays), total),
        "noted_within_21d": _share(noted, total),
        "median_delay_days": _median(delays),
        "flagged_at_8_weeks": _share(
            sum(_flagged_at(tr, c + 8 * WEEK_MS) for tr, c in cases), total
        ),
        "flagged_at_16_weeks": _share(
            sum(_flagged_at(tr, c + 16 * WEEK_MS) for tr, c in cases), total
        ),
    }
    if kind in LASTING_KINDS:
        figures["median_score_8_weeks"] = _median(_scores_at(cases, 8 * WEEK_MS))
        figures["median_score_16_weeks"] = _median(_scores_at(cases, 16 * WEEK_MS))
    if kind is Kind.SILENCE:
        figures.update(_critical_figures(cases))
    if kind is Kind.DIP_10D:
        figures.update(_dip_figures(cases))
    return figures


def _flagged(picture: Picture) -> bool:
    return picture.flagged


def _noted(picture: Picture) -> bool:
    return picture.noted


def _critical(picture: Picture) -> bool:
    return picture.zone == "critical"


def _flagged_at(trace: AccountTrace, t_ms: int) -> bool:
    picture = trace.at(t_ms)
    return picture is not None and picture.flagged


def _scores_at(cases: Sequence[tuple[AccountTrace, int]], after_ms: int) -> list[float]:
    pictures = [trace.at(c + after_ms) for trace, c in cases]
    return [p.score for p in pictures if p is not None]


def _critical_figures(cases: Sequence[tuple[AccountTrace, int]]) -> dict[str, Any]:
    end = 16 * WEEK_MS + 7 * MS_PER_DAY
    days = [
        (t - c) / MS_PER_DAY
        for trace, c in cases
        if (t := trace.first(c, c + end, _critical)) is not None
    ]
    return {
        "critical_within_14d": _share(sum(d <= CRITICAL_DAYS for d in days), len(cases)),
        "median_days_to_critical": _median(days),
    }


def _dip_figures(cases: Sequence[tuple[AccountTrace, int]]) -> dict[str, Any]:
    watch = DIP_WATCH_DAYS * MS_PER_DAY

    def red_or_alert(trace: AccountTrace, c: int) -> bool:
        alerted = any(c <= t <= c + watch for t, _, _ in trace.alerts)
        return alerted or trace.first(c, c + watch, lambda p: p.red) is not None

    yellow = sum(trace.first(c, c + watch, lambda p: p.yellow) is not None for trace, c in cases)
    return {
        "red_or_alert": _share(sum(red_or_alert(tr, c) for tr, c in cases), len(cases)),
        "yellow_finding": _share(yellow, len(cases)),
    }


def _by_volume(
    plans: Sequence[AccountPlan], figures: Callable[[Sequence[AccountPlan]], dict[str, Any]]
) -> dict[str, Any]:
    volumes = sorted({p.volume for p in plans})
    return {
        "all": figures(plans),
        "by_volume": {str(v): figures([p for p in plans if p.volume == v]) for v in volumes},
    }


def profile_figures(dataset: Dataset, traces: Mapping[str, AccountTrace]) -> dict[str, Any]:
    """Every figure of one profile's run over ``dataset``."""
    empty = AccountTrace()

    def trace(plan: AccountPlan) -> AccountTrace:
        return traces.get(plan.account_id, empty)

    since = dataset.day_ms(WARMUP_DAYS)
    until = dataset.day_ms(dataset.settings.days)
    steady = [p for p in dataset.accounts if p.kind is Kind.STEADY]

    def changed(kind: Kind, group: Sequence[AccountPlan]) -> dict[str, Any]:
        return change_figures(kind, [(trace(p), dataset.day_ms(p.change_day)) for p in group])

    return {
        "steady": _by_volume(
            steady, lambda group: steady_figures([trace(p) for p in group], since, until)
        ),
        "kinds": {
            str(kind): _by_volume(
                [p for p in dataset.accounts if p.kind is kind], partial(changed, kind)
            )
            for kind in dataset.settings.kinds
        },
    }
