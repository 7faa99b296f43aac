"""The input event contract (version 1) as typed values for the core.

Decoding bytes into these values (and rejecting bad input) belongs to ``telemetry.codec``;
the core only ever sees validated events.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

MS_PER_DAY = 86_400_000


class EventType(StrEnum):
    """Every event type of contract version 1."""

    LOGIN = "login"
    VALUE_ACTION = "value_action"
    FEATURE_USED = "feature_used"
    API_CALLS = "api_calls"
    INTEGRATION_TICKET_CREATED = "integration_ticket_created"
    INTEGRATION_TICKET_CLOSED = "integration_ticket_closed"
    INTEGRATION_MESSAGE_SENT = "integration_message_sent"
    SUPPORT_TICKET_OPENED = "support_ticket_opened"
    SUPPORT_TICKET_ESCALATED = "support_ticket_escalated"
    SUPPORT_TICKET_RESOLVED = "support_ticket_resolved"
    INVOICE_PAID = "invoice_paid"
    PAYMENT_FAILED = "payment_failed"
    MEETING_ATTENDED = "meeting_attended"
    MEETING_MISSED = "meeting_missed"
    EMAIL_REPLIED = "email_replied"
    CHAMPION_CHANGED = "champion_changed"
    NPS_RESPONSE = "nps_response"
    ACCOUNT_FACTS = "account_facts"
    #: a customer-success manager's governed override: a held score with reason and expiry
    MANUAL_OVERRIDE = "manual_override"
    TICK = "tick"


#: Types whose ``value`` is a count accumulated into daily buckets; it must be a
#: non-negative integer so that window sums stay exact.
COUNT_TYPES = frozenset(
    {
        EventType.LOGIN,
        EventType.VALUE_ACTION,
        EventType.FEATURE_USED,
        EventType.API_CALLS,
        EventType.INTEGRATION_TICKET_CREATED,
        EventType.INTEGRATION_TICKET_CLOSED,
        EventType.INTEGRATION_MESSAGE_SENT,
    }
)


def day_of(ts_ms: int) -> int:
    """The UTC day number (days since 1970-01-01) of an epoch-milliseconds time."""
    return ts_ms // MS_PER_DAY


class TelemetryEvent(NamedTuple):
    """One validated telemetry event. ``type == TICK`` events carry no account.

    A named tuple rather than a dataclass: one is built for every record consumed.
    """

    event_id: str
    account_id: str
    type: EventType
    ts_ms: int
    value: float = 1.0
    user_id: str | None = None
    attrs: dict[str, Any] = {}  # noqa: RUF012 - shared empty default, never mutated

    @property
    def day(self) -> int:
        return self.ts_ms // MS_PER_DAY
