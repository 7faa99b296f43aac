"""The published JSON Schema and the decoder agree on what a valid event is."""

import json
import tomllib
from datetime import datetime
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthstream.dev.synthetic import Scenario, generate
from telemetry.codec import BadEvent, decode_event
from telemetry.limits import check_kept_texts

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/telemetry-event.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
CORPUS = Path(__file__).parent / "bad_inputs"
INDEX = tomllib.loads((CORPUS / "expected.toml").read_text())
#: bad records whose fault the schema cannot state: a size, and rules across fields
BEYOND_THE_SCHEMA = {
    "oversized.json",
    "api_errors_above_calls.json",
    "override_expires_before_ts.json",
}
T = 1767225600000


def _decodes(record: object) -> bool:
    try:
        decode_event(orjson.dumps(record))
    except BadEvent:
        return False
    return True


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_generated_events_are_valid_under_the_schema_and_the_decoder() -> None:
    types = set()
    for record in generate(Scenario(accounts=12, days=30)):
        VALIDATOR.validate(record)
        decode_event(orjson.dumps(record))
        types.add(record["type"])
    assert len(types) >= 15


@pytest.mark.parametrize("name", sorted(INDEX["accepted"]))
def test_the_corpus_good_records_are_valid_under_the_schema(name: str) -> None:
    VALIDATOR.validate(orjson.loads((CORPUS / name).read_bytes()))


def _json_or_none(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


#: the refused records that are JSON at all, with what they hold
BAD_JSON = {
    name: _json_or_none((CORPUS / name).read_bytes())
    for name in sorted(INDEX["refused"])
    if _json_or_none((CORPUS / name).read_bytes()) is not None
}


@pytest.mark.parametrize("name", sorted(BAD_JSON))
def test_the_corpus_bad_records_are_refused_by_the_schema_too(name: str) -> None:
    assert VALIDATOR.is_valid(BAD_JSON[name]) == (name in BEYOND_THE_SCHEMA)


OVERRIDE = {"event_id": "o1", "account_id": "a", "type": "manual_override", "ts": T}


@pytest.mark.parametrize(
    "attrs",
    [
        {"score": 45, "reason": "re-org at the customer", "expires_at": "2026-02-01T00:00:00Z"},
        {"score": 45, "reason": "re-org", "expires_at": T + 86_400_000, "author": "lee"},
        {"action": "set", "score": 0, "reason": "r", "expires_at": "2026-01-01 00:00:01+00:00"},
        {"action": "clear", "reason": "talked to the new VP", "override_id": "o1"},
        {"action": "clear", "reason": "no score needed", "score": 1000},
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
        {"score": 45, "reason": "r", "expires_at": "2300-01-01T00:00:00Z"},
        {"score": True, "reason": "r", "expires_at": "2026-02-01T00:00:00Z"},
        {"score": 45, "reason": "r", "expires_at": "2026-02-01T00:00:00Z", "author": 7},
        {"action": "clear", "reason": "r", "override_id": ["o1"]},
        None,
    ],
)
def test_bad_manual_overrides_are_refused_by_both(attrs: dict | None) -> None:
    record = {**OVERRIDE, "attrs": attrs}
    assert not VALIDATOR.is_valid(record)
    with pytest.raises(BadEvent) as refused:
        decode_event(orjson.dumps(record))
    assert refused.value.reason == "bad_attrs"


# -- agreement under fuzzing --------------------------------------------------------------

GOOD_RECORDS = [
    orjson.loads((CORPUS / name).read_bytes())
    for name in sorted(INDEX["accepted"])
    if name != "good_nested_attrs.json"
]
PATHS = ["event_id", "account_id", "type", "ts", "user_id", "value", "attrs"] + [
    f"attrs.{key}"
    for key in (
        *("feature", "errors", "ticket_id", "csat", "days_late", "response_hours", "status"),
        *("segment", "plan", "seats", "contract_start", "renewal_date", "api_driven"),
        *("action", "score", "reason", "expires_at", "author", "override_id"),
    )
]
#: values that sit on or just past a rule of the contract, for any field
NOTABLE: list[object] = [
    *(None, True, False, 0, -1, 1, 2.5, 5, 5.5, 10, 11, 100, 100.5, 10**9, 10**9 + 1, 1e9),
    *(2**63, 2**64 - 1, 1e300, "", " ", "x", "login", "tick", "teleport", "set", "clear"),
    *("pause", "assigned", "departed", "2026-01-01", "2026-02-30", "1969-12-31", "1970-01-01"),
    *("2199-12-31", "2200-01-01", "20260101", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00"),
    *("2026-01-01T10:00:00.5+01:00", "2026-01-01 10:00+0100", "2026-W01-4T00:00:00Z"),
    *("1999-12-31T23:59:59Z", "next week", [], {}, ["x"], {"a": 1}, T, T - 1, T + 1),
    *(T + 86_400_000, 1767225600, 946684800000, 946684799999, 7258118399999, 7258118400000),
]
VALUE = (
    st.sampled_from(NOTABLE)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)


def _as_ms(ts: object) -> float:
    """A time the schema found valid, in epoch ms (read here independently of the codec)."""
    if isinstance(ts, str):
        return datetime.fromisoformat(ts).timestamp() * 1000
    assert isinstance(ts, int | float)
    return ts


def _cross_field_rules_hold(record: dict) -> bool:
    """The two rules the schema cannot state: errors ≤ value; an override ends after ts."""
    attrs = record.get("attrs") or {}
    if record["type"] == "api_calls" and "errors" in attrs:
        return attrs["errors"] <= record.get("value", 1)
    if record["type"] == "manual_override" and attrs.get("action", "set") == "set":
        return _as_ms(attrs["expires_at"]) > _as_ms(record["ts"])
    return True


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(GOOD_RECORDS),
    st.lists(st.tuples(st.sampled_from(PATHS), st.booleans(), VALUE), min_size=1, max_size=3),
)
def test_schema_and_decoder_accept_and_refuse_the_same_records(
    record: dict, changes: list[tuple[str, bool, object]]
) -> None:
    record = {**record}
    for path, drop, value in changes:
        target = record
        if path.startswith("attrs."):
            attrs = record.get("attrs")
            target = record["attrs"] = {**attrs} if isinstance(attrs, dict) else {}
        key = path.rpartition(".")[2]
        if drop:
            target.pop(key, None)
        else:
            target[key] = value
    expected = VALIDATOR.is_valid(record) and _cross_field_rules_hold(record)
    assert _decodes(record) == expected, list(VALIDATOR.iter_errors(record))[:1]


@pytest.mark.parametrize(
    ("field", "bound"),
    [
        ("account_id", 256),
        ("event_id", 256),
        ("user_id", 256),
        ("feature", 256),
        ("reason", 1024),
    ],
)
def test_the_schema_and_the_decoder_bound_the_kept_texts_alike(field: str, bound: int) -> None:
    def record(text: str) -> dict:
        if field == "feature":
            base = {"event_id": "e1", "account_id": "a", "type": "feature_used", "ts": T}
            return {**base, "attrs": {"feature": text}}
        if field == "reason":
            attrs = {"score": 45, "reason": text, "expires_at": T + 86_400_000}
            return {**OVERRIDE, "attrs": attrs}
        base = {"event_id": "e1", "account_id": "a", "type": "login", "ts": T, "user_id": "u"}
        return {**base, field: text}

    def kept(text: str) -> bool:
        """Whether the worker and replay apply it: decoded, and its texts within bounds."""
        try:
            check_kept_texts(decode_event(orjson.dumps(record(text))))
        except BadEvent:
            return False
        return True

    at_bound, beyond = "x" * bound, "x" * (bound + 1)
    assert VALIDATOR.is_valid(record(at_bound)) and kept(at_bound)
    assert not VALIDATOR.is_valid(record(beyond)) and not kept(beyond)
