"""Nothing the worker writes can outgrow a Kafka record, whatever its input holds."""

import orjson
import pytest

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from stream.scorer import BatchScorer, InputRecord, StrKeyedBytesStore
from telemetry.codec import MAX_EVENT_BYTES
from telemetry.limits import (
    MAX_ID_BYTES,
    MAX_REASON_BYTES,
    MAX_RECORD_BYTES,
    PREFIX_BYTES,
    dead_letter,
)

DAY_MS = 86_400_000
T0 = 20_454 * DAY_MS  # 2026-01-01


def _text(tag: str, n: int, size: int) -> str:
    """A distinct text of ``size`` UTF-8 bytes, as costly in JSON as text can be: control
    characters, each written as 6 bytes (``\\u0001``)."""
    head = f"{tag}{n}-"
    return head + "\x01" * (size - len(head))


def _worst_case_records() -> list[InputRecord]:
    """Events that fill every text an account keeps, each text at its bound."""
    account = _text("acct", 0, MAX_ID_BYTES)
    events: list[dict[str, object]] = []

    def add(etype: str, day: int, **fields: object) -> None:
        n = len(events)
        event = {
            "event_id": _text("e", n, MAX_ID_BYTES),
            "account_id": account,
            "type": etype,
            "ts": T0 + day * DAY_MS + n,
        }
        events.append(event | fields)

    for n in range(40):
        day = n * 2  # over 80 days: every series' buckets dense
        add("login", day, user_id=_text("u", n, MAX_ID_BYTES), value=10**9)
        add("feature_used", day, attrs={"feature": _text("f", n, MAX_ID_BYTES)}, value=10**9)
        add("api_calls", day, value=10**9, attrs={"errors": 10**9})
        add("support_ticket_opened", day, attrs={"ticket_id": _text("t", n, MAX_ID_BYTES)})
        add("support_ticket_escalated", day, attrs={"ticket_id": _text("t", n, MAX_ID_BYTES)})
        add("champion_changed", day, user_id=_text("c", n, MAX_ID_BYTES))
    add(
        "account_facts",
        80,
        attrs={"segment": _text("s", 0, MAX_ID_BYTES), "plan": _text("p", 0, MAX_ID_BYTES)},
    )
    add(
        "manual_override",
        80,
        user_id=_text("csm", 0, MAX_ID_BYTES),
        attrs={
            "score": 40,
            "reason": _text("r", 0, MAX_REASON_BYTES),
            "author": _text("a", 0, MAX_ID_BYTES),
            "override_id": _text("o", 0, MAX_ID_BYTES),
            "expires_at": T0 + 200 * DAY_MS,
        },
    )
    raws = [orjson.dumps(e) for e in events]
    assert max(len(r) for r in raws) <= MAX_EVENT_BYTES
    return [InputRecord(0, n, raw, 0, account.encode()) for n, raw in enumerate(raws)]


def test_no_snapshot_and_no_output_can_outgrow_a_kafka_record() -> None:
    scorer = BatchScorer(HealthEngine(ScoringConfig(load_profile(), 1)), StrKeyedBytesStore({}, {}))
    result = scorer.process(_worst_case_records())
    assert not result.dead_letters, result.dead_letters[:1]
    (account,) = result.touched
    snapshot = len(account.encode()) + len(scorer.snapshot(account))
    largest_output = max(len(account.encode()) + len(orjson.dumps(o)) for _, o, _ in result.outputs)
    # about 250 KB and 75 KB, as telemetry.limits says: a quarter and a thirteenth of the limit
    assert snapshot < MAX_RECORD_BYTES // 4 and largest_output < MAX_RECORD_BYTES // 13


@pytest.mark.parametrize(
    ("field", "bound"),
    [
        ("account_id", MAX_ID_BYTES),
        ("event_id", MAX_ID_BYTES),
        ("user_id", MAX_ID_BYTES),
        ("attrs.feature", MAX_ID_BYTES),
        ("attrs.reason", MAX_REASON_BYTES),
    ],
)
def test_a_kept_text_over_its_bound_is_dead_lettered_as_oversized(field: str, bound: int) -> None:
    def record(size: int, offset: int) -> InputRecord:
        # a 4-byte character at the end: the bound is in UTF-8 bytes, not characters
        text = "x" * (size - 4) + "\U0001f600"
        attrs: dict[str, object] = {"score": 50, "reason": "why", "expires_at": T0 + DAY_MS}
        event: dict[str, object] = {
            "event_id": f"e{offset}",
            "account_id": "acct-1",
            "type": "manual_override" if field == "attrs.reason" else "feature_used",
            "ts": T0,
            "attrs": attrs,
        }
        if field.startswith("attrs."):
            attrs[field.removeprefix("attrs.")] = text
        else:
            event[field] = text
        return InputRecord(0, offset, orjson.dumps(event), 0, str(event["account_id"]).encode())

    scorer = BatchScorer(HealthEngine(ScoringConfig(load_profile(), 5)), StrKeyedBytesStore({}, {}))
    result = scorer.process([record(bound, 0), record(bound + 1, 1)])
    assert [(d.reason, d.record.offset) for d in result.dead_letters] == [("oversized", 1)]
    assert f"{field} of {bound + 1:,} bytes exceeds {bound:,}" in result.dead_letters[0].message


def test_a_dead_letter_carries_the_record_as_read_or_a_reference_past_64_kib() -> None:
    small = dead_letter("in", 3, 17, b"acct-1", b"{nope", "not_json", "not JSON")
    assert (small.key, small.value) == (b"acct-1", b"{nope")
    headers = dict(small.headers)
    assert headers["form"] == b"record" and headers["reason"] == b"not_json"
    assert (headers["source_topic"], headers["source_partition"], headers["source_offset"]) == (
        b"in",
        b"3",
        b"17",
    )
    tombstone = dead_letter("in", 0, 1, b"acct-2", None, "empty", "record has no value")
    assert (tombstone.key, tombstone.value) == (b"acct-2", None)
    assert dead_letter("in", 0, 2, None, b"x", "not_json", "e").key is None

    value = b'{"event_id":"e","pad":"' + b"\xff" * MAX_EVENT_BYTES + b'"}'
    big = dead_letter("in", 1, 9, b"acct-3", value, "oversized", "x" * 5000)
    assert big.key == b"acct-3" and dict(big.headers)["form"] == b"reference"
    assert len(dict(big.headers)["error"]) == 1000
    reference = orjson.loads(big.value or b"")
    assert reference["value_prefix"].startswith('{"event_id":"e","pad":"\ufffd')
    assert len(reference["value_prefix"]) == PREFIX_BYTES
    assert {k: v for k, v in reference.items() if not k.endswith("_prefix")} == {
        "topic": "in",
        "partition": 1,
        "offset": 9,
        "key_bytes": 6,
        "value_bytes": len(value),
    }
    assert reference["key_prefix"] == "acct-3"
    # a key past the prefix stays in the reference only
    huge_key = dead_letter("in", 1, 10, b"k" * (MAX_EVENT_BYTES + 1), b"{}", "wrong_key", "e")
    assert huge_key.key is None
    assert orjson.loads(huge_key.value or b"")["key_bytes"] == MAX_EVENT_BYTES + 1
    assert len(big.value or b"") < 5 * PREFIX_BYTES
