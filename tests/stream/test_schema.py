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
