"""Decode raw telemetry records (contract version 1) into ``TelemetryEvent`` values.

Every rejection raises ``BadEvent`` with a short machine-readable ``reason`` and a human
message, so the worker can dead-letter the record and count it by reason. For any bytes
at all the decoder returns an event or raises ``BadEvent``, never anything else, and an
event it returns can be applied to an account without error.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from windows.telemetry import COUNT_TYPES, EventType, TelemetryEvent

MAX_EVENT_BYTES = 64 * 1024
#: events further ahead of the worker's clock than this are refused (``future``)
DEFAULT_MAX_FUTURE_SKEW_MS = 3_600_000
#: timestamps outside 2000-01-01 .. 2200-01-01 are refused as nonsense (``bad_ts``) on live
#: input: a ``ts`` in seconds, or a year typed wrong, would otherwise move the clock decades
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 7_258_118_400_000
#: the offline tools read history as old as 1970-01-01: the core counts days from the
#: epoch and keeps day -1 for "no day", so nothing earlier has a day to go in
OFFLINE_MIN_TS_MS = 0
#: the largest count, seat number or days late one event may carry: far above any real
#: one, and small enough that a day's window sums stay exact
MAX_COUNT = 10**9
#: the largest money or seat amount (``attrs.amount``) one count event may carry
MAX_AMOUNT = 10**12
#: ids given as numbers (Zendesk's are) are read as their digits up to 2^53 - 1, the
#: largest whole number every JSON reader holds exactly
MAX_NUMERIC_ID = 2**53 - 1
#: every reason a record can be refused for, by the decoder or (``too_old``,
#: ``unprocessable``) by the worker applying it
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
_OVERRIDE_ACTIONS = ("set", "clear")
#: ISO-8601 date-times as the schema states them: calendar date, time, an offset
_ISO_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: contract dates are days 1970-01-01 .. 2199-12-31 (day -1 means "none" to the core)
_MIN_DATE, _MAX_DATE = date(1970, 1, 1), date(2199, 12, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class BadEvent(ValueError):
    """A record that cannot be applied; ``reason`` is a short label for counters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _missing(name: str, got: Any) -> BadEvent:
    """An identifying field absent, or not a non-empty string."""
    if got is None:
        return BadEvent("missing_field", f"{name} is required")
    return BadEvent("missing_field", f"{name} must be a non-empty string, got {got!r:.80}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_ts(value: Any, name: str = "ts", *, min_ts_ms: int = MIN_TS_MS) -> int:
    """Epoch milliseconds from epoch milliseconds or ISO-8601 text with an offset.

    Refuses (``bad_ts``) anything else and any time before ``min_ts_ms`` (by default
    2000, as on live input; ``OFFLINE_MIN_TS_MS`` for history) or from 2200 on."""
    if type(value) is int:
        ms = value
    elif _is_number(value):
        if not math.isfinite(value):
            raise BadEvent("bad_ts", f"{name} is not finite: {value!r}")
        ms = int(value)
    elif isinstance(value, str):
        if _ISO_TS.fullmatch(value) is None:
            raise BadEvent("bad_ts", f"{name} is not ISO-8601 with a UTC offset: {value!r:.80}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadEvent("bad_ts", f"{name} is not a valid time: {value!r}: {exc}") from None
        ms = (parsed - _EPOCH) // _MS
    else:
        raise BadEvent(
            "bad_ts", f"{name} must be epoch milliseconds or ISO-8601 text, got {value!r:.80}"
        )
    if not min_ts_ms <= ms < MAX_TS_MS:
        raise BadEvent(
            "bad_ts", f"{name} {value!r:.80} is outside {_span(min_ts_ms)}: not a real time"
        )
    return ms


def _span(min_ts_ms: int) -> str:
    """The accepted years, as errors name them: ``2000-2200``, ``1970-2200``."""
    return f"{(_EPOCH + min_ts_ms * _MS).year}-2200"


def _check_date(attrs: dict[str, Any], key: str) -> None:
    if key not in attrs:
        return
    text = attrs[key]
    day = None
    if type(text) is str and _ISO_DATE.fullmatch(text) is not None:
        try:
            day = date.fromisoformat(text)
        except ValueError:  # a day the calendar does not have, e.g. 2026-02-30
            pass
    if day is None:
        raise BadEvent("bad_attrs", f"attrs.{key} must be an ISO date (YYYY-MM-DD): {text!r:.80}")
    if not _MIN_DATE <= day <= _MAX_DATE:
        raise BadEvent("bad_attrs", f"attrs.{key} {text} is outside 1970-2199")


def _check_number(attrs: dict[str, Any], key: str, lo: float, hi: float = math.inf) -> None:
    if key in attrs:
        v = attrs[key]
        if not _is_number(v) or not math.isfinite(v) or not lo <= v <= hi:
            raise BadEvent(
                "bad_attrs", f"attrs.{key} must be a number in [{lo:g}, {hi:g}]: {v!r:.80}"
            )


def _check_string(attrs: dict[str, Any], key: str) -> None:
    if key in attrs and type(attrs[key]) is not str:
        raise BadEvent("bad_attrs", f"attrs.{key} must be a string, got {attrs[key]!r:.80}")


def _with_text_id(attrs: dict[str, Any], key: str) -> dict[str, Any]:
    """The attrs with the id ``key`` as text: a whole number becomes its digits, in a new
    dict. JSON does not tell 12345.0 from 12345 (nor does the schema), so neither do we."""
    if key not in attrs or type(attrs[key]) is str:
        return attrs
    v = attrs[key]
    whole = type(v) is int or (type(v) is float and v.is_integer())
    if whole and 0 <= v <= MAX_NUMERIC_ID:
        return {**attrs, key: str(int(v))}
    raise BadEvent(
        "bad_attrs",
        f"attrs.{key} must be a string, or a whole number from 0 to 2^53-1, got {v!r:.80}",
    )


def _check_amount(attrs: dict[str, Any]) -> None:
    """``attrs.amount``: money or seats the count stands for, summed beside the count."""
    if "amount" in attrs:
        v = attrs["amount"]
        if not _is_number(v) or not math.isfinite(v) or not 0 <= v <= MAX_AMOUNT:
            raise BadEvent(
                "bad_attrs",
                f"attrs.amount must be a finite number from 0 to 1e12 (money or seats), "
                f"got {v!r:.80}",
            )


def _check_count(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_amount(attrs)
    return attrs


def _check_api_calls(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_amount(attrs)
    if "errors" in attrs:
        errors = attrs["errors"]
        if not _is_number(errors) or not 0 <= errors <= value or errors != int(errors):
            raise BadEvent(
                "bad_attrs",
                f"attrs.errors must be a whole number from 0 to value ({value:g}): {errors!r:.80}",
            )
    return attrs


def _check_feature(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_amount(attrs)
    _check_string(attrs, "feature")
    return attrs


def _check_ticket(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    return _with_text_id(attrs, "ticket_id")


def _check_resolved(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    attrs = _check_ticket(attrs, value, ts_ms)
    _check_number(attrs, "csat", 1, 5)
    return attrs


def _check_invoice(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_number(attrs, "days_late", 0, MAX_COUNT)
    return attrs


def _check_email(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_number(attrs, "response_hours", 0)
    return attrs


def _check_champion(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    if attrs.get("status", "assigned") not in _CHAMPION_STATUSES:
        raise BadEvent(
            "bad_attrs",
            f"attrs.status must be one of {_CHAMPION_STATUSES}, got {attrs['status']!r:.80}",
        )
    return attrs


def _check_facts(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    _check_string(attrs, "segment")
    _check_string(attrs, "plan")
    _check_number(attrs, "seats", 0, MAX_COUNT)
    if "api_driven" in attrs and type(attrs["api_driven"]) is not bool:
        raise BadEvent(
            "bad_attrs", f"attrs.api_driven must be true or false, got {attrs['api_driven']!r:.80}"
        )
    _check_date(attrs, "contract_start")
    _check_date(attrs, "renewal_date")
    return attrs


def _check_manual_override(attrs: dict[str, Any], value: float, ts_ms: int) -> dict[str, Any]:
    """A CSM's override: ``set`` a held score until ``expires_at``, or ``clear`` it.

    Returns the attrs with ``expires_at`` (ISO-8601 with an offset, or epoch ms) also as
    ``expires_at_ms``, in a new dict: the caller's mapping is left as it was."""
    action = attrs.get("action", "set")
    if action not in _OVERRIDE_ACTIONS:
        raise BadEvent("bad_attrs", f"attrs.action must be 'set' or 'clear', got {action!r:.80}")
    reason = attrs.get("reason")
    if type(reason) is not str or not reason.strip():
        raise BadEvent("bad_attrs", "attrs.reason is required: say why the score is overridden")
    _check_string(attrs, "author")
    attrs = _with_text_id(attrs, "override_id")
    if action == "clear":
        return attrs
    if "score" not in attrs:
        raise BadEvent("bad_attrs", "attrs.score is required to set an override")
    _check_number(attrs, "score", 0, 100)
    if "expires_at" not in attrs:
        raise BadEvent("bad_attrs", "attrs.expires_at is required: an override must end")
    try:
        # the widest bound: being after ts, expires_at is already held to ts's
        expires_ms = parse_ts(attrs["expires_at"], "expires_at", min_ts_ms=OFFLINE_MIN_TS_MS)
    except BadEvent as exc:
        raise BadEvent("bad_attrs", f"attrs.{exc}") from None
    if expires_ms <= ts_ms:
        raise BadEvent(
            "bad_attrs", f"attrs.expires_at {attrs['expires_at']!r} is not after the event's ts"
        )
    return {**attrs, "expires_at_ms": expires_ms}


_ATTR_CHECKS = {
    **{etype: _check_count for etype in COUNT_TYPES},
    EventType.API_CALLS: _check_api_calls,
    EventType.FEATURE_USED: _check_feature,
    EventType.SUPPORT_TICKET_OPENED: _check_ticket,
    EventType.SUPPORT_TICKET_ESCALATED: _check_ticket,
    EventType.SUPPORT_TICKET_RESOLVED: _check_resolved,
    EventType.INVOICE_PAID: _check_invoice,
    EventType.EMAIL_REPLIED: _check_email,
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
    event = event_from_mapping(parse_record(raw))
    if now_ms is not None and event.ts_ms > now_ms + max_future_skew_ms:
        ahead = (event.ts_ms - now_ms) / 1000
        raise BadEvent("future", f"ts is {ahead:,.0f} s ahead of the worker's clock")
    return event


def parse_record(raw: bytes) -> dict[str, Any]:
    """A record's bytes as a JSON object; ``BadEvent`` says why they are not one."""
    if not raw:
        raise BadEvent("empty", "record has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent("oversized", f"record of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # told apart only here, so that the common case pays for one UTF-8 check, orjson's
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise BadEvent("not_utf8", f"not UTF-8 at byte {bad.start}") from None
        raise BadEvent("not_json", f"not JSON: {exc}") from None
    if type(obj) is not dict:
        raise BadEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def event_from_mapping(obj: dict[str, Any], *, min_ts_ms: int = MIN_TS_MS) -> TelemetryEvent:
    """Validate a parsed record; the common case takes one pass of cheap checks.

    Times before ``min_ts_ms`` are refused: 2000 by default, as on live input."""
    kind = obj.get("type")
    etype = _TYPES.get(kind) if type(kind) is str else None
    if etype is None:
        if type(kind) is not str:
            raise _missing("type", kind)
        raise BadEvent("unknown_type", f"unknown event type {kind!r:.80}")
    ts = obj.get("ts")
    if type(ts) is int and min_ts_ms <= ts < MAX_TS_MS:
        ts_ms = ts
    elif ts is None:
        raise BadEvent("missing_field", "ts is required")
    else:
        ts_ms = parse_ts(ts, min_ts_ms=min_ts_ms)
    if etype is EventType.TICK:
        return TelemetryEvent("", "", etype, ts_ms)
    event_id = obj.get("event_id")
    account_id = obj.get("account_id")
    if type(event_id) is not str or not event_id:
        raise _missing("event_id", event_id)
    if type(account_id) is not str or not account_id:
        raise _missing("account_id", account_id)
    value = obj.get("value", 1)
    if type(value) not in _NUMBER_TYPES or not math.isfinite(value):
        raise BadEvent("bad_value", f"value must be a finite number, got {value!r:.80}")
    if etype in COUNT_TYPES:
        if not 0 <= value <= MAX_COUNT or value != int(value):
            raise BadEvent(
                "bad_value",
                f"{etype.value} counts are whole numbers from 0 to {MAX_COUNT:,}: {value!r} "
                "(money or seats go in attrs.amount)",
            )
    elif etype is EventType.NPS_RESPONSE:
        if "value" not in obj:
            raise BadEvent("bad_value", "an NPS response needs its 0-10 score in value")
        if not 0 <= value <= 10:
            raise BadEvent("bad_value", f"an NPS response is 0-10, got {value!r}")
    user_id = obj.get("user_id")
    if user_id is not None and type(user_id) is not str:
        raise BadEvent("bad_field", f"user_id must be a string, got {user_id!r:.80}")
    attrs = obj.get("attrs")
    if attrs is None:
        attrs = {}
    elif type(attrs) is not dict:
        raise BadEvent("bad_field", f"attrs must be an object, got {type(attrs).__name__}")
    check = _ATTR_CHECKS.get(etype)
    if check is not None:
        attrs = check(attrs, value, ts_ms)
    return TelemetryEvent(event_id, account_id, etype, ts_ms, value, user_id, attrs)


def encode_output(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
