"""The published JSON Schema and the decoder agree on what a valid event is."""

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from stream.codec import BadEvent, decode_event
from stream.synthetic import Scenario, generate

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/telemetry-event.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_generated_events_are_valid_under_the_schema_and_the_decoder() -> None:
    for record in generate(Scenario(accounts=40, days=30)):
        VALIDATOR.validate(record)
        decode_event(orjson.dumps(record))


@pytest.mark.parametrize(
    "record",
    [
        {"account_id": "a", "type": "login", "ts": 1},
        {"event_id": "1", "account_id": "a", "type": "teleport", "ts": 1},
        {"event_id": "1", "account_id": "a", "type": "login", "ts": "2026-01-01T00:00:00"},
        {"event_id": "1", "account_id": "a", "type": "api_calls", "ts": 1, "value": -1},
        {"event_id": "1", "account_id": "a", "type": "api_calls", "ts": 1, "value": 1.5},
        {"event_id": "1", "account_id": "a", "type": "nps_response", "ts": 1, "value": 12},
        {"event_id": "1", "account_id": "a", "type": "login", "ts": 1, "attrs": []},
        {
            "event_id": "1",
            "account_id": "a",
            "type": "champion_changed",
            "ts": 1,
            "attrs": {"status": "gone"},
        },
    ],
)
def test_invalid_events_are_refused_by_both(record: dict) -> None:
    assert not VALIDATOR.is_valid(record)
    with pytest.raises(BadEvent):
        decode_event(orjson.dumps(record))


T = 1767225600000
OVERRIDE = {"event_id": "o1", "account_id": "a", "type": "manual_override", "ts": T}


@pytest.mark.parametrize(
    "attrs",
    [
        {"score": 45, "reason": "re-org at the customer", "expires_at": "2026-02-01T00:00:00Z"},
        {"score": 45, "reason": "re-org", "expires_at": T + 86_400_000, "author": "lee"},
        {"action": "clear", "reason": "talked to the new VP", "override_id": "o1"},
    ],
)
def test_manual_overrides_are_accepted_by_both(attrs: dict) -> None:
    record = {**OVERRIDE, "attrs": attrs}
    VALIDATOR.validate(record)
    event = decode_event(orjson.dumps(record))
    if attrs.get("action") != "clear":
        assert event.attrs["expires_at_ms"] > T


@pytest.mark.parametrize(
    "attrs",
    [
        {"score": 45, "expires_at": "2026-02-01T00:00:00Z"},  # no reason
        {"score": 45, "reason": " ", "expires_at": "2026-02-01T00:00:00Z"},
        {"score": 120, "reason": "r", "expires_at": "2026-02-01T00:00:00Z"},
        {"score": 45, "reason": "r"},  # never ends
        {"reason": "r", "expires_at": "2026-02-01T00:00:00Z"},  # holds what?
        {"action": "pause", "reason": "r"},
        {"score": 45, "reason": "r", "expires_at": "next week"},
    ],
)
def test_bad_manual_overrides_are_refused_by_both(attrs: dict) -> None:
    record = {**OVERRIDE, "attrs": attrs}
    assert not VALIDATOR.is_valid(record)
    with pytest.raises(BadEvent) as refused:
        decode_event(orjson.dumps(record))
    assert refused.value.reason == "bad_attrs"
