"""The figures on hand-made output sequences: flips, onsets, exits, rates and detection."""

from datetime import UTC, datetime
from typing import Any

import pytest

from quality.generator import Kind
from quality.measure import (
    AccountTrace,
    TraceSink,
    change_figures,
    edge_flips,
    steady_figures,
    zone_flips,
)

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = int(datetime(2025, 5, 1, tzinfo=UTC).timestamp() * 1000)


def iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def changed(
    t_ms: int, score: int = 90, zone: str = "healthy", findings: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    """A ``score_changed`` with findings given as (detector, severity), on value_actions."""
    return {
        "kind": "score_changed",
        "event_time": iso(t_ms),
        "score": score,
        "zone": zone,
        "detectors": [
            {"detector": d, "severity": s, "series": "value_actions"} for d, s in findings
        ],
    }


def alert(t_ms: int, name: str = "score_drop", severity: str = "red") -> dict[str, Any]:
    return {"kind": "alert", "event_time": iso(t_ms), "alert": name, "severity": severity}


def override(t_ms: int, applied: bool, name: str = "detector_cap") -> dict[str, Any]:
    kind = "override_applied" if applied else "override_cleared"
    return {"kind": kind, "event_time": iso(t_ms), "override": name}


def trace_of(*outputs: dict[str, Any]) -> AccountTrace:
    trace = AccountTrace()
    for output in outputs:
        trace.add(output)
    return trace


YELLOW = (("drop_no_recovery", "yellow"),)


def test_a_finding_on_and_off_within_a_day_is_one_flip() -> None:
    trace = trace_of(changed(T0), changed(T0 + DAY, findings=YELLOW), changed(T0 + DAY + 10 * HOUR))
    assert edge_flips(trace.finding_edges, T0) == 1


def test_a_finding_on_for_longer_than_a_day_is_no_flip() -> None:
    trace = trace_of(changed(T0, findings=YELLOW), changed(T0 + 30 * HOUR))
    assert edge_flips(trace.finding_edges, T0) == 0


def test_a_finding_off_and_on_again_within_a_day_is_a_flip() -> None:
    trace = trace_of(
        changed(T0, findings=YELLOW),
        changed(T0 + 5 * DAY),
        changed(T0 + 5 * DAY + 12 * HOUR, findings=YELLOW),
    )
    assert edge_flips(trace.finding_edges, T0) == 1


def test_flips_before_the_start_of_counting_are_left_out() -> None:
    trace = trace_of(changed(T0, findings=YELLOW), changed(T0 + HOUR))
    assert edge_flips(trace.finding_edges, T0 + DAY) == 0


def test_a_zone_change_undone_within_a_day_is_a_flip_and_an_exit() -> None:
    trace = trace_of(
        changed(T0),
        changed(T0 + 2 * DAY, 70, "at_risk"),
        changed(T0 + 2 * DAY + 6 * HOUR, 80, "healthy"),
        changed(T0 + 10 * DAY, 60, "at_risk"),
    )
    assert zone_flips(trace.zone_changes, T0) == 1
    figures = steady_figures([trace], T0, T0 + 30 * DAY)
    assert figures["flips_within_24h"] == {"findings": 0, "zones": 1, "overrides": 0}
    months = 30 / 30.44
    assert figures["exits_from_healthy_per_100_account_months"] == round(200 / months, 2)


def test_an_override_applied_and_cleared_within_a_day_is_a_flip() -> None:
    trace = trace_of(changed(T0), override(T0 + DAY, True), override(T0 + DAY + HOUR, False))
    figures = steady_figures([trace], T0, T0 + 30 * DAY)
    assert figures["flips_within_24h"]["overrides"] == 1


def test_onsets_count_rises_to_yellow_and_to_red_not_falls() -> None:
    trace = trace_of(
        changed(T0, findings=(("single_drop", "monitor"),)),
        changed(T0 + DAY, findings=(("single_drop", "yellow"),)),
        changed(T0 + 2 * DAY, findings=(("single_drop", "red"),)),
        changed(T0 + 3 * DAY, findings=(("single_drop", "yellow"),)),
        changed(T0 + 4 * DAY, findings=(("regime_change", "red"),)),
    )
    assert [(t - T0) // DAY for t, _, _ in trace.onsets] == [1, 2, 4]
    assert [s for _, _, s in trace.onsets] == ["yellow", "red", "red"]


def test_steady_rates_are_per_100_account_months_after_the_warm_up() -> None:
    since = T0 + 10 * DAY
    until = since + round(30.44 * DAY)
    quiet = trace_of(changed(T0), alert(T0 + DAY))  # its alert falls in the warm-up
    noisy = trace_of(changed(T0), alert(since + DAY), alert(since + 2 * DAY))
    figures = steady_figures([quiet, noisy], since, until)
    assert figures["account_months"] == 2.0
    assert figures["alerts"] == 2
    assert figures["alerts_per_100_account_months"] == 100.0
    assert figures["accounts_with_an_alert"] == 0.5
    assert figures["median_score"] == 90
    assert figures["share_of_days_flagged"] == 0.0


def test_a_flag_onset_is_becoming_flagged_by_a_finding_or_a_zone() -> None:
    since = T0 + 10 * DAY
    until = since + round(30.44 * DAY)
    trace = trace_of(
        changed(T0, 70, "at_risk"),  # flagged in the warm-up: not counted
        changed(since + DAY),
        changed(since + 2 * DAY, 74, "healthy", YELLOW),  # an onset by a finding
        changed(since + 3 * DAY, 70, "at_risk", YELLOW),  # still flagged: no new onset
        changed(since + 5 * DAY),
        changed(since + 8 * DAY, 70, "at_risk"),  # an onset by the zone
        changed(since + 9 * DAY, 72, "at_risk"),
    )
    figures = steady_figures([trace], since, until)
    assert figures["flag_onsets_per_100_account_months"] == 200.0


def test_detection_delay_is_measured_from_the_change() -> None:
    change = T0 + 50 * DAY
    soon = trace_of(changed(T0), changed(change + 5 * DAY, 70, "at_risk"))
    later = trace_of(changed(T0), changed(change + 9 * DAY, 74, "healthy", YELLOW))
    missed = trace_of(changed(T0), changed(change + 25 * DAY, 70, "at_risk"))
    monitor = trace_of(changed(T0), changed(change + DAY, findings=(("single_drop", "monitor"),)))
    cases = [(t, change) for t in (soon, later, missed, monitor)]
    figures = change_figures(Kind.DROP_30, cases)
    assert figures["detected_within_21d"] == 0.5
    assert figures["noted_within_21d"] == 0.75
    assert figures["median_delay_days"] == 7.0
    assert figures["flagged_at_change"] == 0.0
    assert figures["flagged_at_8_weeks"] == 0.75
    assert figures["median_score_8_weeks"] == 72  # of 70, 74, 70, 90


def test_an_account_flagged_before_the_change_counts_as_detected_at_once() -> None:
    change = T0 + 50 * DAY
    trace = trace_of(changed(T0, 70, "at_risk"))
    figures = change_figures(Kind.DROP_10, [(trace, change)])
    assert figures["flagged_at_change"] == 1.0
    assert figures["median_delay_days"] == 0.0


def test_silence_figures_time_the_way_to_critical() -> None:
    change = T0 + 50 * DAY
    fast = trace_of(changed(T0), changed(change + 8 * DAY, 10, "critical"))
    slow = trace_of(changed(T0), changed(change + 20 * DAY, 10, "critical"))
    figures = change_figures(Kind.SILENCE, [(fast, change), (slow, change)])
    assert figures["critical_within_14d"] == 0.5
    assert figures["median_days_to_critical"] == 14.0


def test_dip_figures_count_red_findings_and_alerts_in_the_watch() -> None:
    change = T0 + 50 * DAY
    red = trace_of(changed(T0), changed(change + 3 * DAY, 35, "at_risk", (("x", "red"),)))
    alerted = trace_of(changed(T0), alert(change + 12 * DAY))
    yellow = trace_of(changed(T0), changed(change + 20 * DAY, 74, "healthy", YELLOW))
    late = trace_of(changed(T0), alert(change + 40 * DAY))
    figures = change_figures(Kind.DIP_10D, [(t, change) for t in (red, alerted, yellow, late)])
    assert figures["red_or_alert"] == 0.5
    assert figures["yellow_finding"] == 0.25
    assert "median_score_8_weeks" not in figures


def test_the_sink_folds_outputs_by_account() -> None:
    sink = TraceSink()
    sink.deliver("a", changed(T0))
    sink.deliver("b", changed(T0, 60, "at_risk"))
    sink.deliver("a", alert(T0 + HOUR))
    assert sink.outputs == 3
    assert len(sink.traces["a"].alerts) == 1
    picture = sink.traces["b"].at(T0 + DAY)
    assert picture is not None and picture.flagged
    assert sink.traces["a"].at(T0 - 1) is None


@pytest.mark.parametrize(
    ("zone", "findings", "flagged", "noted"),
    [
        ("healthy", (), False, False),
        ("healthy", (("single_drop", "monitor"),), False, True),
        ("healthy", YELLOW, True, True),
        ("critical", (), True, True),
    ],
)
def test_flagged_and_noted(
    zone: str, findings: tuple[tuple[str, str], ...], flagged: bool, noted: bool
) -> None:
    picture = trace_of(changed(T0, zone=zone, findings=findings)).at(T0)
    assert picture is not None
    assert (picture.flagged, picture.noted) == (flagged, noted)


def test_a_drop_escalating_to_no_recovery_is_one_finding_growing_more_severe() -> None:
    trace = trace_of(
        changed(T0, findings=(("single_drop", "monitor"),)),
        changed(T0 + 20 * HOUR, findings=YELLOW),  # the same drop, now three weeks old
    )
    assert edge_flips(trace.finding_edges, T0) == 0
    assert [(key, severity) for _, key, severity in trace.onsets] == [
        ("drop:value_actions", "yellow")
    ]
