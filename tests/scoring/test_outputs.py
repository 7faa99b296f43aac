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
    EMIT_REASONS,
    AlertRaised,
    Common,
    Identity,
    OverrideApplied,
    OverrideCleared,
    ScoreChanged,
    iso_time,
)
from scoring.profile import load_profile
from sinks import MemorySink

IDENTITY = list(Identity.__annotations__)
COMMON = list(Common.__annotations__)
#: per kind, the fields after ``kind``, the identity and the common ones, in order
#: (docs/events.md); a score_changed that enters a zone ends with its ``playbook``
AFTER_COMMON = {
    "score_changed": [
        "emitted_for",
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
        "override",
        "effect",
        "value",
        "score_before",
        "severity",
        "evidence",
        "action",
    ],
    "override_cleared": ["override", "reason"],
    "alert": ["alert", "severity", "evidence", "action"],
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
        fields = ["kind", *IDENTITY, *COMMON, *AFTER_COMMON[out["kind"]]]
        if "playbook" in out:
            fields.append("playbook")
        assert list(out) == fields, out["kind"]


def test_each_output_is_named_by_account_and_seq_counting_all_kinds_without_gaps(
    outputs: list[Mapping[str, Any]],
) -> None:
    seqs: dict[str, list[int]] = {}
    for out in outputs:
        assert out["schema_version"] == 1
        assert out["id"] == f"{out['account_id']}:{out['seq']}"
        seqs.setdefault(out["account_id"], []).append(out["seq"])
    for account, seq in seqs.items():
        assert seq == list(range(1, len(seq) + 1)), account
    assert len({out["id"] for out in outputs}) == len(outputs)


def test_a_score_change_says_why_it_was_emitted(outputs: list[Mapping[str, Any]]) -> None:
    last: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    for out in outputs:
        if out["kind"] != "score_changed":
            continue
        reasons, before = out["emitted_for"], last.get(out["account_id"])
        assert reasons and reasons == [r for r in EMIT_REASONS if r in reasons]
        seen.update(reasons)
        if before is None:
            assert reasons == ["first"]
        else:
            assert ("step" in reasons) == (abs(out["score"] - before["score"]) >= 5)
            assert ("zone" in reasons) == (out["zone"] != before["zone"])
            keys = [(d["detector"], d["series"]) for d in out["detectors"]]
            was = [(d["detector"], d["series"]) for d in before["detectors"]]
            assert ("findings" in reasons) == (keys != was)
            names = [o["override"] for o in out["overrides"]]
            assert ("overrides" in reasons) == (
                names != [o["override"] for o in before["overrides"]]
            )
        # the zone's playbook comes once, with the change that enters the zone
        assert ("playbook" in out) == ("first" in reasons or "zone" in reasons)
        if "playbook" in out and out["playbook"] is not None:
            assert out["playbook"]["zone"] == out["zone"]
        last[out["account_id"]] = out
    assert seen == set(EMIT_REASONS)


def test_the_typed_records_declare_the_same_fields() -> None:
    from typing import get_type_hints

    for kind, record in TYPES.items():
        declared = set(get_type_hints(record)) - {"playbook"}
        assert declared == {"kind", *IDENTITY, *COMMON, *AFTER_COMMON[kind]}, kind


def test_event_time_is_iso_8601_to_the_millisecond_in_utc() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso_time(1_767_312_000_123) == "2026-01-02T00:00:00.123+00:00"
