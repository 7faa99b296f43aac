"""The decoder under fuzzing: any bytes give an event the core can apply, or a ``BadEvent``.

Four sources of input: arbitrary bytes; good records with bytes flipped, dropped or added;
JSON texts from a small grammar that includes what ``orjson.dumps`` cannot write (``NaN``,
integers past 64 bits, escaped lone surrogates, keys given twice); and good records of every
type with fields changed to notable or arbitrary values. A refusal must carry a reason the
contract documents; an accepted event must apply to an account, and its snapshot must read
back, without error.
"""

import json
import tomllib
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.book import AccountBook
from scoring.engine import DuplicateEvent, EventTooOld, HealthEngine, ScoringConfig
from scoring.profile import load_profile
from telemetry.codec import MAX_TS_MS, MIN_TS_MS, REASONS, BadEvent, decode_event, encode_output
from windows.snapshot import decode_state, encode_state
from windows.telemetry import EventType, TelemetryEvent

CORPUS = Path(__file__).parent / "bad_inputs"
GOOD = [
    (CORPUS / name).read_bytes()
    for name in sorted(tomllib.loads((CORPUS / "expected.toml").read_text())["accepted"])
]
GOOD_RECORDS = [orjson.loads(raw) for raw in GOOD if len(raw) < 1000]
#: ``too_old`` and ``unprocessable`` are the worker's, never the decoder's
DECODER_REASONS = REASONS - {"too_old", "unprocessable"}
ENGINE = HealthEngine(ScoringConfig(load_profile(), 5))
T = 1767225600000
SEED = TelemetryEvent("seed", "acct-42", EventType.LOGIN, T, 1, "u-7")

FIELDS = ["event_id", "account_id", "type", "ts", "user_id", "value", "attrs"]
ATTRS = [
    "feature",
    "errors",
    "integration",
    "ticket_id",
    "csat",
    "days_late",
    "response_hours",
    "status",
    "segment",
    "plan",
    "seats",
    "contract_start",
    "renewal_date",
    "api_driven",
    "action",
    "score",
    "reason",
    "expires_at",
    "expires_at_ms",
    "author",
    "override_id",
]
NOTABLE = [
    *("null", "true", "false", "0", "-0.0", "-1", "1", "2.5", "10", "11", "100", "101"),
    *("1000000000", "1000000001", "1e9", "9223372036854775808", "18446744073709551615"),
    *("18446744073709551616", "123456789012345678901234567890", "1e300", "1e400", "-1e400"),
    *("NaN", "Infinity", "-Infinity", '""', '" "', '"x"', '"\\ud800"', '"\\u0000"'),
    *('"login"', '"tick"', '"manual_override"', '"set"', '"clear"', '"pause"', '"departed"'),
    *('"2026-01-01"', '"2026-02-30"', '"1969-12-31"', '"1970-01-01"', '"2199-12-31"'),
    *('"2026-01-01T00:00:00Z"', '"2026-01-01T00:00:00"', '"2026-01-01T00:00:00.001+01:00"'),
    *('"1999-12-31T23:59:59Z"', '"2199-12-31T23:59:59-14:00"', '"2026-W01-4T00:00:00Z"'),
    *("[]", "{}", "[1]", '{"a":1}', "[" * 40 + "]" * 40),
    *(str(T), str(T - 1), str(T + 86_400_000), str(T - 100 * 86_400_000), "1767225600"),
    *(str(MIN_TS_MS), str(MIN_TS_MS - 1), str(MAX_TS_MS - 1), str(MAX_TS_MS)),
]
LEAF = (
    st.sampled_from(NOTABLE)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False))
)
KEY = st.sampled_from(FIELDS + ATTRS) | st.text(max_size=4)


def _array(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(items, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")


def _object(values: st.SearchStrategy[str], size: int) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(KEY, values), max_size=size)
    return pairs.map(lambda kvs: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in kvs) + "}")


# two levels, not st.recursive: as many cases in a third of the time; NOTABLE and the
# corpus hold the deep ones
VALUE = LEAF | _array(LEAF) | _object(LEAF, 4)
JSON_TEXT = VALUE | _array(VALUE) | _object(VALUE, 8)
#: a field path and its new JSON text, or None to drop the field
CHANGE = st.tuples(st.sampled_from(FIELDS + [f"attrs.{key}" for key in ATTRS]), st.none() | LEAF)
NOW = st.none() | st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS)


def _decoded(raw: bytes, now_ms: int | None = None) -> TelemetryEvent | None:
    """The event, or None when refused with a documented reason; anything else fails."""
    try:
        event = decode_event(raw) if now_ms is None else decode_event(raw, now_ms=now_ms)
    except BadEvent as exc:
        assert exc.reason in DECODER_REASONS, exc.reason
        assert str(exc)
        return None
    assert isinstance(event, TelemetryEvent) and isinstance(event.type, EventType)
    assert isinstance(event.ts_ms, int) and MIN_TS_MS <= event.ts_ms < MAX_TS_MS
    if now_ms is not None:
        assert event.ts_ms <= now_ms + 3_600_000
    return event


def _applied(event: TelemetryEvent) -> None:
    """Apply the event to an account that has seen a login, as the worker would."""
    book = AccountBook(ENGINE)
    book.apply(SEED)
    try:
        if event.type is EventType.TICK:
            outputs = [out for _, out in book.tick(event.ts_ms, ["acct-42"])[0]]
        else:
            outputs = book.apply(event._replace(account_id="acct-42"))
    except (EventTooOld, DuplicateEvent):
        return  # counted by the worker, never a crash
    for out in outputs:
        orjson.loads(encode_output(out))
    snapshot = encode_state(book.state("acct-42"))
    assert encode_state(decode_state(snapshot)) == snapshot


def _with_changes(record: dict[str, object], changes: list[tuple[str, str | None]]) -> bytes:
    record = {**record}
    texts = {}
    for n, (path, text) in enumerate(changes):
        target: dict[str, object] = record
        if path.startswith("attrs."):
            attrs = record.get("attrs")
            target = record["attrs"] = {**attrs} if isinstance(attrs, dict) else {}
        key = path.rpartition(".")[2]
        if text is None:
            target.pop(key, None)
        else:
            target[key] = f"\x00{n}"
            texts[b'"\\u0000%d"' % n] = text.encode()
    raw = orjson.dumps(record)
    for holder, text in texts.items():
        raw = raw.replace(holder, text)
    return raw


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _decoded(raw)


@settings(max_examples=800, deadline=None)
@given(
    st.sampled_from(GOOD),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255), st.booleans()), max_size=4),
)
def test_good_records_with_bytes_changed(raw: bytes, edits: list[tuple[int, int, bool]]) -> None:
    data = bytearray(raw)
    for position, byte, insert in edits:
        at = position % (len(data) + 1)
        if insert:
            data.insert(at, byte)
        elif at < len(data):
            data[at] = byte
    event = _decoded(bytes(data))
    if event is not None:
        _applied(event)


@settings(max_examples=600, deadline=None)
@given(JSON_TEXT)
def test_json_texts(text: str) -> None:
    event = _decoded(text.encode())
    if event is not None:
        _applied(event)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(GOOD_RECORDS), st.lists(CHANGE, min_size=1, max_size=3), NOW)
def test_good_records_with_fields_changed(
    record: dict[str, object], changes: list[tuple[str, str | None]], now_ms: int | None
) -> None:
    event = _decoded(_with_changes(record, changes), now_ms)
    if event is not None:
        _applied(event)
