"""Decode raw telemetry records (contract version 1) into ``TelemetryEvent`` values.

Every rejection raises ``BadEvent`` with a short machine-readable ``reason`` and a human
message, so the worker can dead-letter the record and count it by reason.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import orjson

from windows.telemetry import COUNT_TYPES, EventType, TelemetryEvent

MAX_EVENT_BYTES = 64 * 1024
_TYPES = {t.value: t for t in EventType}
_CHAMPION_STATUSES = ("assigned", "departed")


class BadEvent(ValueError):
    """A record that cannot be applied; ``reason`` is a short label for counters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_ts(value: Any) -> int:
    """Epoch milliseconds from epoch milliseconds or ISO-8601 text with an offset."""
    if _is_number(value):
        if not math.isfinite(value):
            raise BadEvent("bad_ts", f"ts is not finite: {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadEvent("bad_ts", f"ts is not ISO-8601: {value!r}") from None
        if parsed.tzinfo is None:
            raise BadEvent("bad_ts", f"ts has no UTC offset: {value!r}")
        return int(parsed.timestamp() * 1000)
    raise BadEvent("bad_ts", f"ts must be epoch milliseconds or ISO-8601 text, got {value!r}")


def _check_date(attrs: dict[str, Any], key: str) -> None:
    if key in attrs:
        try:
            date.fromisoformat(str(attrs[key])[:10])
        except ValueError:
            raise BadEvent("bad_attrs", f"attrs.{key} is not an ISO date: {attrs[key]!r}") from None


def _check_number(attrs: dict[str, Any], key: str, lo: float, hi: float = math.inf) -> None:
    if key in attrs:
        v = attrs[key]
        if not _is_number(v) or not math.isfinite(v) or not lo <= v <= hi:
            raise BadEvent("bad_attrs", f"attrs.{key} must be a number in [{lo:g}, {hi:g}]: {v!r}")


def _check_attrs(etype: EventType, attrs: dict[str, Any], value: float) -> None:
    if etype is EventType.API_CALLS:
        _check_number(attrs, "errors", 0, value)
    elif etype is EventType.SUPPORT_TICKET_RESOLVED:
        _check_number(attrs, "csat", 1, 5)
    elif etype is EventType.INVOICE_PAID:
        _check_number(attrs, "days_late", 0)
    elif etype is EventType.EMAIL_REPLIED:
        _check_number(attrs, "response_hours", 0)
    elif etype is EventType.NPS_RESPONSE:
        if not 0 <= value <= 10:
            raise BadEvent("bad_value", f"an NPS response is 0-10, got {value!r}")
    elif etype is EventType.CHAMPION_CHANGED:
        if attrs.get("status", "assigned") not in _CHAMPION_STATUSES:
            raise BadEvent("bad_attrs", f"attrs.status must be one of {_CHAMPION_STATUSES}")
    elif etype is EventType.ACCOUNT_FACTS:
        _check_date(attrs, "contract_start")
        _check_date(attrs, "renewal_date")
        _check_number(attrs, "seats", 0)


def decode_event(raw: bytes) -> TelemetryEvent:
    """Validate one record; raises ``BadEvent`` naming what is wrong."""
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent("oversized", f"record of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent("not_json", f"not JSON (or not UTF-8): {exc}") from None
    if not isinstance(obj, dict):
        raise BadEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return event_from_mapping(obj)


def event_from_mapping(obj: dict[str, Any]) -> TelemetryEvent:
    etype = _TYPES.get(obj.get("type"))  # type: ignore[arg-type]
    if etype is None:
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise BadEvent("missing_field", f"type must be a string, got {kind!r}")
        raise BadEvent("unknown_type", f"unknown event type {kind!r}")
    if "ts" not in obj:
        raise BadEvent("missing_field", "ts is required")
    ts_ms = parse_ts(obj["ts"])
    if etype is EventType.TICK:
        return TelemetryEvent(event_id="", account_id="", type=etype, ts_ms=ts_ms)
    event_id = obj.get("event_id")
    account_id = obj.get("account_id")
    if not isinstance(event_id, str) or not event_id:
        raise BadEvent("missing_field", f"event_id must be a non-empty string, got {event_id!r}")
    if not isinstance(account_id, str) or not account_id:
        raise BadEvent(
            "missing_field", f"account_id must be a non-empty string, got {account_id!r}"
        )
    value = obj.get("value", 1)
    if not _is_number(value) or not math.isfinite(value):
        raise BadEvent("bad_value", f"value must be a finite number, got {value!r}")
    if etype in COUNT_TYPES and (value < 0 or value != int(value)):
        raise BadEvent(
            "bad_value", f"{etype.value} counts must be non-negative integers: {value!r}"
        )
    user_id = obj.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise BadEvent("bad_field", f"user_id must be a string, got {user_id!r}")
    attrs = obj.get("attrs")
    if attrs is None:
        attrs = {}
    elif not isinstance(attrs, dict):
        raise BadEvent("bad_field", f"attrs must be an object, got {type(attrs).__name__}")
    _check_attrs(etype, attrs, value)
    return TelemetryEvent(event_id, account_id, etype, ts_ms, value, user_id, attrs)


def encode_output(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
