"""Sizes that keep every record the worker writes within what Kafka accepts.

A producer refuses a record over its ``max_request_size`` (1,000,000 bytes in Faust's) and
a stock broker one over 1,048,588 bytes. A worker that tried to write one would fail on the
same input again after every restart, so nothing it writes may grow with its input:

- a dead letter carries the refused record as read only up to ``WHOLE_DEAD_LETTER_BYTES``
  of key and value; past that it carries a reference to it (``dead_letter``);
- the texts an account keeps (ids, names, an override's reason) are bounded
  (``check_kept_texts``), so no snapshot and no output can outgrow ``MAX_RECORD_BYTES``.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from telemetry.codec import MAX_EVENT_BYTES, BadEvent
from windows.telemetry import TelemetryEvent

#: the largest record the worker may write: Faust's producer refuses anything larger
MAX_RECORD_BYTES = 1_000_000
#: a refused record whose key and value together are larger goes as a reference
WHOLE_DEAD_LETTER_BYTES = MAX_EVENT_BYTES
#: how much of a referenced record's key and value the reference shows
PREFIX_BYTES = 1024
#: the ``error`` header is cut to this many characters
MAX_ERROR_CHARS = 1000
#: an id or name an account keeps: account, event and user ids, features, tickets, …
MAX_ID_BYTES = 256
#: a manual override's reason, kept while the override is in force
MAX_REASON_BYTES = 1024
#: the ``attrs`` whose text an account keeps, each with its bound
KEPT_ATTRS = (
    ("feature", MAX_ID_BYTES),
    ("ticket_id", MAX_ID_BYTES),
    ("override_id", MAX_ID_BYTES),
    ("author", MAX_ID_BYTES),
    ("segment", MAX_ID_BYTES),
    ("plan", MAX_ID_BYTES),
    ("reason", MAX_REASON_BYTES),
)

Headers = list[tuple[str, bytes]]


def _over(text: str, limit: int) -> bool:
    # a character is at most 4 bytes of UTF-8: short texts need no encoding to be measured
    return len(text) * 4 > limit and len(text.encode()) > limit


def check_kept_texts(event: TelemetryEvent) -> None:
    """Refuse (``oversized``) an event whose kept texts are over their bounds.

    The fullest account the tests build (every kept text at its bound and made of
    characters JSON escapes in 6 bytes) has a snapshot of about 250 KB and outputs of at
    most about 75 KB (``tests/telemetry/test_limits.py``)."""
    for name, text in (
        ("account_id", event.account_id),
        ("event_id", event.event_id),
        ("user_id", event.user_id),
    ):
        if text is not None and _over(text, MAX_ID_BYTES):
            raise _oversized(name, text, MAX_ID_BYTES)
    attrs = event.attrs
    if attrs:
        for name, limit in KEPT_ATTRS:
            value = attrs.get(name)
            if type(value) is str and _over(value, limit):
                raise _oversized(f"attrs.{name}", value, limit)


def _oversized(name: str, text: str, limit: int) -> BadEvent:
    return BadEvent("oversized", f"{name} of {len(text.encode()):,} bytes exceeds {limit:,}")


class DeadLetterRecord(NamedTuple):
    """What goes to the dead-letter topic for one refused record."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    error: str,
) -> DeadLetterRecord:
    """The dead letter of the record at ``topic``/``partition``/``offset``.

    Up to ``WHOLE_DEAD_LETTER_BYTES`` of key and value, the record's key and value as read
    (a null value stays null) with header ``form: record``. Past that, with header
    ``form: reference``, a JSON reference: where the record is, its sizes, and the first
    ``PREFIX_BYTES`` of its key and value as text (bytes that are not UTF-8 read as
    U+FFFD); the key stays when it is at most ``PREFIX_BYTES``."""
    headers: Headers = [
        ("reason", reason.encode()),
        ("error", error[:MAX_ERROR_CHARS].encode()),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
    size = len(key or b"") + len(value or b"")
    if size <= WHOLE_DEAD_LETTER_BYTES:
        headers.append(("form", b"record"))
        return DeadLetterRecord(key, value, headers)
    headers.append(("form", b"reference"))
    reference = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key_bytes": None if key is None else len(key),
        "value_bytes": None if value is None else len(value),
        "key_prefix": _prefix(key),
        "value_prefix": _prefix(value),
    }
    kept_key = key if key is not None and len(key) <= PREFIX_BYTES else None
    return DeadLetterRecord(kept_key, orjson.dumps(reference), headers)


def _prefix(data: bytes | None) -> str | None:
    if data is None:
        return None
    # a multi-byte character cut at the end reads as U+FFFD, like any other bad byte
    return bytes(data[:PREFIX_BYTES]).decode("utf-8", errors="replace")
