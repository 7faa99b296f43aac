"""scoring.outputs: every kind of output carries the documented fields, in one order."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pytest

from healthstream.dev.synthetic import Scenario, write_jsonl
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.outputs import (
    AlertRaised,
    Common,
    OverrideApplied,
    OverrideCleared,
    ScoreChanged,
    iso_time,
)
from scoring.profile import load_profile
from sinks import MemorySink

COMMON = list(Common.__annotations__)
#: per kind, the fields after ``kind`` and the common ones, in order (docs/events.md)
AFTER_COMMON = {
    "score_changed": [
        "seq",
        "previous_score",
        "previous_zone",
        "computed_score",
        "categories",
        "signals",
        "detectors",
        "overrides",
        "segment",
        "login_gated",
    ],
    "override_applied": [
        "seq",
        "override",
        "effect",
        "value",
        "score_before",
        "severity",
        "evidence",
        "action",
    ],
    "override_cleared": ["seq", "override", "reason"],
    "alert": ["seq", "alert", "severity", "evidence", "action"],
}
TYPES: dict[str, Any] = {
    "score_changed": ScoreChanged,
    "override_applied": OverrideApplied,
    "override_cleared": OverrideCleared,
    "alert": AlertRaised,
}


@pytest.fixture(scope="module")
def outputs() -> list[Mapping[str, Any]]:
    buffer = io.BytesIO()
    write_jsonl(Scenario(accounts=60, days=150, seed=11, intensity=3.0, churn_in_span=True), buffer)
    sink = MemorySink()
    replay(buffer.getvalue().splitlines(), HealthEngine(ScoringConfig(load_profile())), sink)
    return [event for _, event in sink.events]


def test_every_kind_is_emitted_with_its_fields_in_order(outputs: list[Mapping[str, Any]]) -> None:
    seen = {out["kind"] for out in outputs}
    assert seen == set(AFTER_COMMON)
    for out in outputs:
        assert list(out) == ["kind", *COMMON, *AFTER_COMMON[out["kind"]]], out["kind"]


def test_the_typed_records_declare_the_same_fields() -> None:
    from typing import get_type_hints

    for kind, record in TYPES.items():
        declared = set(get_type_hints(record))
        assert declared == {"kind", *COMMON, *AFTER_COMMON[kind]}, kind


def test_event_time_is_iso_8601_to_the_millisecond_in_utc() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso_time(1_767_312_000_123) == "2026-01-02T00:00:00.123+00:00"
