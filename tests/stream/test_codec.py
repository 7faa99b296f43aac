"""Decoding of contract records and the reasons for rejecting bad ones."""

import pytest

from stream.codec import MAX_EVENT_BYTES, BadEvent, decode_event
from windows.telemetry import EventType


def test_minimal_event_defaults() -> None:
    e = decode_event(b'{"event_id":"1","account_id":"a","type":"login","ts":1767225600000}')
    assert e.type is EventType.LOGIN
    assert e.value == 1 and e.attrs == {} and e.user_id is None
    assert e.day == 20454


def test_iso_timestamp_with_offset() -> None:
    e = decode_event(
        b'{"event_id":"1","account_id":"a","type":"login","ts":"2026-01-01T02:00:00+02:00"}'
    )
    assert e.ts_ms == 1767225600000


def test_tick_needs_only_ts() -> None:
    e = decode_event(b'{"type":"tick","ts":1e12}')
    assert e.type is EventType.TICK


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"[1,2]", "not_object"),
        (b'{"account_id":"a","type":"login","ts":1e12}', "missing_field"),
        (b'{"event_id":"1","type":"login","ts":1e12}', "missing_field"),
        (b'{"event_id":"1","account_id":"a","type":"login"}', "missing_field"),
        (b'{"event_id":"1","account_id":"a","type":"teleport","ts":1e12}', "unknown_type"),
        (b'{"event_id":"1","account_id":"a","type":"login","ts":"2026-01-01T00:00:00"}', "bad_ts"),
        (b'{"event_id":"1","account_id":"a","type":"login","ts":true}', "bad_ts"),
        (b'{"event_id":"1","account_id":"a","type":"api_calls","ts":1e12,"value":-3}', "bad_value"),
        (
            b'{"event_id":"1","account_id":"a","type":"api_calls","ts":1e12,"value":2.5}',
            "bad_value",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"nps_response","ts":1e12,"value":11}',
            "bad_value",
        ),
        (b'{"event_id":"1","account_id":"a","type":"login","ts":1e12,"attrs":[]}', "bad_field"),
        (
            b'{"event_id":"1","account_id":"a","type":"support_ticket_resolved","ts":1e12,"attrs":{"csat":9}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"account_facts","ts":1e12,"attrs":{"renewal_date":"soon"}}',
            "bad_attrs",
        ),
        (b'{"event_id":"1","account_id":"a","type":"login","ts":1e12,"user_id":5}', "bad_field"),
        (
            b'{"event_id":"1","account_id":"a","type":"login","ts":1e12,"pad":"'
            + b"x" * MAX_EVENT_BYTES
            + b'"}',
            "oversized",
        ),
    ],
)
def test_bad_records_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadEvent) as info:
        decode_event(raw)
    assert info.value.reason == reason
