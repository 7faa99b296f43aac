"""docs/output-event.v1.schema.json: every output replay gives is valid under it, for every
packaged profile, and docs/events.md names every field it defines."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from healthstream.dev.synthetic import Scenario, write_jsonl
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import PROFILES, load_profile
from sinks import MemorySink

DOCS = Path(__file__).parents[2] / "docs"
SCHEMA = json.loads((DOCS / "output-event.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@pytest.fixture(scope="module")
def log() -> list[bytes]:
    buffer = io.BytesIO()
    write_jsonl(Scenario(accounts=50, days=150, seed=5, intensity=3.0, churn_in_span=True), buffer)
    return buffer.getvalue().splitlines()


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_output_of_replay_is_valid_under_the_schema(log: list[bytes], profile: str) -> None:
    sink = MemorySink()
    replay(log, HealthEngine(ScoringConfig(load_profile(profile))), sink)
    kinds: set[str] = set()
    for _, out in sink.events:
        errors = sorted(VALIDATOR.iter_errors(out), key=lambda e: list(e.path))
        assert not errors, (out["id"], [e.message[:200] for e in errors[:3]])
        kinds.add(out["kind"])
    assert kinds >= {"score_changed", "override_applied", "alert"}


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o.pop("id"),
        lambda o: o.update(schema_version=2),
        lambda o: o.update(emitted_for=[]),
        lambda o: o.update(emitted_for=["because"]),
        lambda o: o.update(zone="amber"),
        lambda o: o.update(event_time="2026-03-14"),
        lambda o: o.update(unknown_field=1),
        lambda o: o.update(kind="score_moved"),
    ],
)
def test_the_schema_refuses_what_the_contract_does_not_allow(log: list[bytes], change: Any) -> None:
    sink = MemorySink()
    replay(log[:400], HealthEngine(ScoringConfig(load_profile())), sink)
    out = dict(next(e for _, e in sink.events if e["kind"] == "score_changed"))
    assert VALIDATOR.is_valid(out)
    change(out)
    assert not VALIDATOR.is_valid(out)


def _fields(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found.update(value)
            found |= _fields(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _fields(item)
    return found


def test_events_md_documents_every_field_and_reason_of_the_schema() -> None:
    text = (DOCS / "events.md").read_text()
    output = text[text.index("## Output") :]
    named = set(re.findall(r"`([a-z_]+)`", output))
    missing = _fields(SCHEMA) - named
    assert not missing, f"docs/events.md does not name {sorted(missing)}"
    for reason in ("first", "step", "zone", "findings", "overrides"):
        assert f"`{reason}`" in output
    assert "output-event.v1.schema.json" in output
