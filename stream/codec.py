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
#: events further ahead of the worker's clock than this are refused (``future``)
DEFAULT_MAX_FUTURE_SKEW_MS = 3_600_000
#: timestamps outside 2000-01-01 .. 2200-01-01 are refused as nonsense (``bad_ts``)
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 7_258_118_400_000
#: every reason a record can be refused for, by the decoder or (``too_old``) the core
REASONS = frozenset(
    {
        "empty",
        "oversized",
        "not_utf8",
        "not_json",
        "not_object",
        "missing_field",
        "unknown_type",
        "bad_ts",
        "future",
        "bad_value",
        "bad_field",
        "bad_attrs",
        "too_old",
        "unprocessable",
    }
)
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


def _check_api_calls(attrs: dict[str, Any], value: float) -> None:
    _check_number(attrs, "errors", 0, value)


def _check_resolved(attrs: dict[str, Any], value: float) -> None:
    _check_number(attrs, "csat", 1, 5)


def _check_invoice(attrs: dict[str, Any], value: float) -> None:
    _check_number(attrs, "days_late", 0)


def _check_email(attrs: dict[str, Any], value: float) -> None:
    _check_number(attrs, "response_hours", 0)


def _check_nps(attrs: dict[str, Any], value: float) -> None:
    if not 0 <= value <= 10:
        raise BadEvent("bad_value", f"an NPS response is 0-10, got {value!r}")


def _check_champion(attrs: dict[str, Any], value: float) -> None:
    if attrs.get("status", "assigned") not in _CHAMPION_STATUSES:
        raise BadEvent("bad_attrs", f"attrs.status must be one of {_CHAMPION_STATUSES}")


def _check_manual_override(attrs: dict[str, Any], value: float) -> None:
    """A CSM's override: ``set`` a held score until ``expires_at``, or ``clear`` it.

    Normalises ``expires_at`` (ISO-8601 with an offset, or epoch ms) to ``expires_at_ms``."""
    action = attrs.get("action", "set")
    if action not in ("set", "clear"):
        raise BadEvent("bad_attrs", f"attrs.action must be 'set' or 'clear', got {action!r}")
    reason = attrs.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadEvent("bad_attrs", "attrs.reason is required: say why the score is overridden")
    for key in ("author", "override_id"):
        if key in attrs and not isinstance(attrs[key], str):
            raise BadEvent("bad_attrs", f"attrs.{key} must be a string, got {attrs[key]!r}")
    if action == "clear":
        return
    if "score" not in attrs:
        raise BadEvent("bad_attrs", "attrs.score is required to set an override")
    _check_number(attrs, "score", 0, 100)
    if "expires_at" not in attrs:
        raise BadEvent("bad_attrs", "attrs.expires_at is required: an override must end")
    try:
        attrs["expires_at_ms"] = parse_ts(attrs["expires_at"])
    except BadEvent as exc:
        raise BadEvent("bad_attrs", f"attrs.expires_at: {exc}") from None


def _check_facts(attrs: dict[str, Any], value: float) -> None:
    _check_date(attrs, "contract_start")
    _check_date(attrs, "renewal_date")
    _check_number(attrs, "seats", 0)


_ATTR_CHECKS = {
    EventType.API_CALLS: _check_api_calls,
    EventType.SUPPORT_TICKET_RESOLVED: _check_resolved,
    EventType.INVOICE_PAID: _check_invoice,
    EventType.EMAIL_REPLIED: _check_email,
    EventType.NPS_RESPONSE: _check_nps,
    EventType.CHAMPION_CHANGED: _check_champion,
    EventType.ACCOUNT_FACTS: _check_facts,
    EventType.MANUAL_OVERRIDE: _check_manual_override,
}
_NUMBER_TYPES = (int, float)


def decode_event(
    raw: bytes, *, now_ms: int | None = None, max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
) -> TelemetryEvent:
    """Validate one record; raises ``BadEvent`` naming what is wrong, and nothing else.

    With ``now_ms``, an event (or tick) more than ``max_future_skew_ms`` ahead of it is
    refused as ``future``: a clock that runs ahead would age every window at once."""
    if not raw:
        raise BadEvent("empty", "record has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent("oversized", f"record of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise BadEvent("not_utf8", f"not UTF-8 at byte {bad.start}") from None
        raise BadEvent("not_json", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    event = event_from_mapping(obj)
    if now_ms is not None and event.ts_ms > now_ms + max_future_skew_ms:
        ahead = (event.ts_ms - now_ms) / 1000
        raise BadEvent("future", f"ts is {ahead:,.0f} s ahead of the worker's clock")
    return event


def event_from_mapping(obj: dict[str, Any]) -> TelemetryEvent:
    """Validate a parsed record; the common case takes one pass of cheap checks."""
    kind = obj.get("type")
    etype = _TYPES.get(kind) if type(kind) is str else None
    if etype is None:
        if not isinstance(kind, str):
            raise BadEvent("missing_field", f"type must be a string, got {kind!r:.80}")
        raise BadEvent("unknown_type", f"unknown event type {kind!r:.80}")
    ts = obj.get("ts")
    if type(ts) is int:
        ts_ms = ts
    elif ts is None:
        raise BadEvent("missing_field", "ts is required")
    else:
        ts_ms = parse_ts(ts)
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise BadEvent("bad_ts", f"ts {ts_ms} ms is outside 2000-2200: not a real event time")
    if etype is EventType.TICK:
        return TelemetryEvent("", "", etype, ts_ms)
    event_id = obj.get("event_id")
    account_id = obj.get("account_id")
    if type(event_id) is not str or not event_id:
        raise BadEvent("missing_field", f"event_id must be a non-empty string, got {event_id!r}")
    if type(account_id) is not str or not account_id:
        raise BadEvent("missing_field", f"account_id must be a non-empty string: {account_id!r}")
    value = obj.get("value", 1)
    if type(value) not in _NUMBER_TYPES or not math.isfinite(value):
        raise BadEvent("bad_value", f"value must be a finite number, got {value!r}")
    if etype in COUNT_TYPES and (value < 0 or value != int(value)):
        raise BadEvent("bad_value", f"{etype.value} counts are non-negative integers: {value!r}")
    user_id = obj.get("user_id")
    if user_id is not None and type(user_id) is not str:
        raise BadEvent("bad_field", f"user_id must be a string, got {user_id!r}")
    attrs = obj.get("attrs")
    if attrs is None:
        attrs = {}
    elif type(attrs) is not dict:
        raise BadEvent("bad_field", f"attrs must be an object, got {type(attrs).__name__}")
    check = _ATTR_CHECKS.get(etype)
    if check is not None:
        check(attrs, value)
    return TelemetryEvent(event_id, account_id, etype, ts_ms, value, user_id, attrs)


def encode_output(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
