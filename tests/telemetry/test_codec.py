"""Decoding of contract records and the reasons for rejecting bad ones."""

import math

import orjson
import pytest

from telemetry.codec import (
    MAX_COUNT,
    MAX_EVENT_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    OFFLINE_MIN_TS_MS,
    BadEvent,
    decode_event,
    event_from_mapping,
    parse_ts,
)
from windows.telemetry import EventType

T = 1767225600000  # 2026-01-01T00:00:00Z


def _event(**fields: object) -> bytes:
    return orjson.dumps({"event_id": "1", "account_id": "a", "type": "login", "ts": T, **fields})


def _reason(raw: bytes) -> str:
    with pytest.raises(BadEvent) as refused:
        decode_event(raw)
    return refused.value.reason


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


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-01T00:00:00.001Z", T + 1),  # exact, no float rounding
        ("2026-01-01T00:00:00.999999Z", T + 999),
        ("2026-01-01 01:00+01:00", T),
        ("2026-01-01T01:00:00+0100", T),
        ("2025-12-31T19:00:00,5-05", T + 500),
    ],
)
def test_iso_forms_the_contract_allows(text: str, ms: int) -> None:
    assert decode_event(_event(ts=text)).ts_ms == ms


@pytest.mark.parametrize(
    "text",
    ["2026-01-01x00:00:00Z", "20260101T000000Z", "2026-W01-4T00:00:00Z", "2026-01-01T00Z", ""],
)
def test_iso_forms_python_reads_but_the_contract_does_not(text: str) -> None:
    assert _reason(_event(ts=text)) == "bad_ts"


def test_ts_bounds_are_2000_to_2200() -> None:
    assert decode_event(_event(ts=MIN_TS_MS)).ts_ms == MIN_TS_MS
    assert decode_event(_event(ts=MAX_TS_MS - 1)).ts_ms == MAX_TS_MS - 1
    assert decode_event(_event(ts=float(MIN_TS_MS) + 0.5)).ts_ms == MIN_TS_MS
    for ts in (MIN_TS_MS - 1, MAX_TS_MS, 0, -T, 2**64 - 1, "2200-01-01T00:00:00Z"):
        assert _reason(_event(ts=ts)) == "bad_ts", ts


def test_tick_needs_only_ts() -> None:
    e = decode_event(b'{"type":"tick","ts":1e12}')
    assert e.type is EventType.TICK


def test_counts_are_bounded_whole_numbers() -> None:
    assert decode_event(_event(value=MAX_COUNT)).value == MAX_COUNT
    assert decode_event(_event(value=1e9)).value == MAX_COUNT
    assert decode_event(_event(value=0)).value == 0
    for value in (MAX_COUNT + 1, 2**63, 2**64 - 1, -1, 0.5, -0.0001):
        assert _reason(_event(value=value)) == "bad_value", value


def test_orjson_edge_cases_have_defined_outcomes() -> None:
    login = b'{"event_id":"1","account_id":"a","type":"login","ts":1767225600000'
    assert _reason(login + b',"value":NaN}') == "not_json"
    assert _reason(login + b',"value":-Infinity}') == "not_json"
    assert _reason(login + b',"value":1e999}') == "not_json"  # overflows a double
    assert _reason(login + b',"user_id":"\\udc00"}') == "not_json"  # escaped lone surrogate
    assert _reason(login + b',"user_id":"\xed\xb0\x80"}') == "not_utf8"  # encoded surrogate
    # integers beyond 64 bits arrive as floats: a count that big is refused by its range
    assert _reason(login + b',"value":%d}' % 2**70) == "bad_value"
    # a key given twice keeps its last value
    assert decode_event(login + b',"user_id":"x","user_id":"y"}').user_id == "y"


def test_event_from_mapping_leaves_the_callers_mapping_as_it_was() -> None:
    attrs = {"score": 40, "reason": "re-org", "expires_at": "2026-01-15T00:00:00Z"}
    record = {"event_id": "o", "account_id": "a", "type": "manual_override", "ts": T}
    event = event_from_mapping({**record, "attrs": attrs})
    assert event.attrs["expires_at_ms"] == T + 14 * 86_400_000
    assert "expires_at_ms" not in attrs


@pytest.mark.parametrize(
    ("attrs", "ok"),
    [
        ({"score": 0, "reason": "r", "expires_at": T + 1}, True),
        ({"score": 100.0, "reason": "r", "expires_at": "2026-01-01T00:00:00.001Z"}, True),
        ({"score": 40, "reason": "r", "expires_at": T}, False),  # must end after it starts
        ({"score": 40, "reason": "r", "expires_at": "2026-01-01T00:00:00Z"}, False),
        ({"score": -0.1, "reason": "r", "expires_at": T + 1}, False),
        ({"score": "40", "reason": "r", "expires_at": T + 1}, False),
        ({"score": 40, "reason": 7, "expires_at": T + 1}, False),
        ({"score": 40, "reason": "r", "expires_at": T + 1, "author": 7}, False),
        ({"score": 40, "reason": "r", "expires_at": T + 1, "override_id": None}, False),
        ({"action": "clear", "reason": "r"}, True),
        ({"action": "clear", "reason": "r", "score": 500}, True),  # ignored when clearing
        ({"action": "clear"}, False),
    ],
)
def test_manual_override_rules(attrs: dict[str, object], ok: bool) -> None:
    raw = _event(type="manual_override", attrs=attrs)
    if ok:
        assert decode_event(raw).type is EventType.MANUAL_OVERRIDE
    else:
        assert _reason(raw) == "bad_attrs"


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
        (b'{"event_id":"1","account_id":"a","type":"nps_response","ts":1e12}', "bad_value"),
        (b'{"event_id":"1","account_id":"a","type":"login","ts":1e12,"attrs":[]}', "bad_field"),
        (
            b'{"event_id":"1","account_id":"a","type":"support_ticket_resolved","ts":1e12,"attrs":{"csat":9}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"support_ticket_opened","ts":1e12,"attrs":{"ticket_id":true}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"api_calls","ts":1e12,"value":9,"attrs":{"errors":1.5}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"account_facts","ts":1e12,"attrs":{"renewal_date":"soon"}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"account_facts","ts":1e12,"attrs":{"renewal_date":"2026-02-30"}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"account_facts","ts":1e12,"attrs":{"contract_start":"1969-12-31"}}',
            "bad_attrs",
        ),
        (
            b'{"event_id":"1","account_id":"a","type":"account_facts","ts":1e12,"attrs":{"segment":null}}',
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
    assert _reason(raw) == reason


def test_a_record_as_large_as_allowed_decodes() -> None:
    head = _event(attrs={"pad": ""})[:-3]
    raw = head + b"x" * (MAX_EVENT_BYTES - len(head) - 3) + b'"}}'
    assert len(raw) == MAX_EVENT_BYTES
    assert len(decode_event(raw).attrs["pad"]) > 60_000
    assert _reason(raw[:-3] + b'x"}}') == "oversized"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("field", "reason"),
    [("ts", "bad_ts"), ("value", "bad_value"), ("attrs.csat", "bad_attrs")],
)
def test_mappings_with_numbers_json_cannot_hold_are_refused(
    field: str, reason: str, bad: float
) -> None:
    record: dict[str, object] = {
        "event_id": "1",
        "account_id": "a",
        "type": "support_ticket_resolved",
        "ts": T,
        "attrs": {"csat": 4},
    }
    if field.startswith("attrs."):
        record["attrs"] = {"csat": bad}
    else:
        record[field] = bad
    with pytest.raises(BadEvent) as refused:
        event_from_mapping(record)
    assert refused.value.reason == reason


# -- history before 2000, amounts, numeric ids ----------------------------------------------

D1997 = 852_076_800_000  # 1997-01-01T00:00:00Z


def _contract(**fields: object) -> dict[str, object]:
    return {"event_id": "1", "account_id": "a", "type": "value_action", "ts": T, **fields}


@pytest.mark.parametrize("ts", [D1997, "1997-01-01T00:00:00Z", 0, "1970-01-01T00:00:00+00:00"])
def test_history_from_1970_is_taken_with_the_offline_bound(ts: object) -> None:
    event = event_from_mapping(_contract(ts=ts), min_ts_ms=OFFLINE_MIN_TS_MS)
    assert event.ts_ms in (D1997, 0)
    with pytest.raises(BadEvent, match="outside 2000-2200: not a real time"):
        event_from_mapping(_contract(ts=ts))  # live input keeps its bound


@pytest.mark.parametrize("ts", [-1, "1969-12-31T23:59:59Z", MAX_TS_MS, "2200-01-01T00:00:00Z"])
def test_times_outside_1970_to_2200_are_refused_offline_too(ts: object) -> None:
    with pytest.raises(BadEvent, match="outside 1970-2200: not a real time") as refused:
        event_from_mapping(_contract(ts=ts), min_ts_ms=OFFLINE_MIN_TS_MS)
    assert refused.value.reason == "bad_ts"
    with pytest.raises(BadEvent, match="outside 1970-2200"):
        parse_ts("1969-07-20T20:17:00Z", min_ts_ms=OFFLINE_MIN_TS_MS)


@pytest.mark.parametrize("kind", ["login", "value_action", "api_calls", "feature_used"])
@pytest.mark.parametrize("amount", [0, 29.33, 10**12, 12])
def test_count_events_carry_an_amount(kind: str, amount: float) -> None:
    event = decode_event(orjson.dumps(_contract(type=kind, attrs={"amount": amount})))
    assert event.attrs["amount"] == amount and event.value == 1


@pytest.mark.parametrize("amount", [-0.01, 10**12 + 1, True, "12.00", None, math.inf, math.nan])
def test_an_amount_that_is_not_money_is_refused(amount: object) -> None:
    with pytest.raises(BadEvent, match=r"attrs\.amount must be a finite number from 0 to 1e12"):
        event_from_mapping(_contract(type="login", attrs={"amount": amount}))


def test_a_fractional_count_is_told_where_amounts_go() -> None:
    with pytest.raises(BadEvent, match=r"counts are whole numbers .*attrs\.amount") as refused:
        decode_event(orjson.dumps(_contract(value=12.99)))
    assert refused.value.reason == "bad_value"


@pytest.mark.parametrize(
    ("kind", "key", "extra"),
    [
        ("support_ticket_opened", "ticket_id", {}),
        ("support_ticket_escalated", "ticket_id", {}),
        ("support_ticket_resolved", "ticket_id", {"csat": 5}),
        ("manual_override", "override_id", {"action": "clear", "reason": "talked to the VP"}),
    ],
)
def test_numeric_ids_become_their_digits(kind: str, key: str, extra: dict[str, object]) -> None:
    def decoded(value: object) -> object:
        record = _contract(type=kind, attrs={**extra, key: value})
        return decode_event(orjson.dumps(record)).attrs[key]

    attrs = {key: 12345, **extra}
    assert event_from_mapping(_contract(type=kind, attrs=attrs)).attrs[key] == "12345"
    assert attrs[key] == 12345  # the caller's attrs are left as they were
    assert decoded(7.0) == "7"  # JSON does not tell 7.0 from 7, and the schema does not either
    assert decoded("Z-9") == "Z-9"


@pytest.mark.parametrize("ticket_id", [True, False, 12.5, -1, 2**53, None, ["1"]])
def test_ids_that_are_not_whole_numbers_or_text_are_refused(ticket_id: object) -> None:
    with pytest.raises(BadEvent, match=r"attrs\.ticket_id must be a string") as refused:
        event_from_mapping(_contract(type="support_ticket_opened", attrs={"ticket_id": ticket_id}))
    assert refused.value.reason == "bad_attrs"
