"""The decoder under fuzzing: any bytes give a valid event or a BadEvent with a known reason."""

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.codec import REASONS, BadEvent, decode_event
from windows.telemetry import EventType, TelemetryEvent

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
VALID = {
    "event_id": "e1",
    "account_id": "acme",
    "type": "support_ticket_resolved",
    "ts": 1767225600000,
    "value": 1,
    "user_id": "u1",
    "attrs": {"ticket_id": "t1", "csat": 4},
}
FIELDS = [*VALID, "attrs.csat", "attrs.expires_at", "attrs.score"]


def _check(raw: bytes) -> None:
    try:
        event = decode_event(raw)
    except BadEvent as exc:
        assert exc.reason in REASONS, exc.reason
        return
    assert isinstance(event, TelemetryEvent) and isinstance(event.type, EventType)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=1500, deadline=None)
@given(JSON)
def test_arbitrary_json_values(value: object) -> None:
    _check(orjson.dumps(value))


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(FIELDS),
    JSON,
    st.sampled_from([t.value for t in EventType]),
)
def test_valid_events_with_one_field_changed(field: str, value: object, etype: str) -> None:
    record = {**VALID, "type": etype, "attrs": dict(VALID["attrs"])}
    if field.startswith("attrs."):
        record["attrs"][field.split(".", 1)[1]] = value
    else:
        record[field] = value
    _check(orjson.dumps(record))
