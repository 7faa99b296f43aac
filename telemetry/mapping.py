"""One mapping language from other shapes of telemetry to the event contract.

A mapping says, for each contract field (``event_id``, ``account_id``, ``type``, ``ts``,
``value``, ``user_id``, ``attrs.NAME``, and ``amount`` for ``attrs.amount``), where to
find it in a source record: a dotted path into a JSON object (``context.groupId``), a CSV
column (a column whose name holds dots is found by its whole name first), several of
those tried in order (``timestamp|originalTimestamp``), or a constant
(``const:value_action``). What the ``type`` source finds is a *name*: with an ``events``
table it is looked up there (``"Signed In" -> login``), and names the table does not know
are skipped with a counter or dead-lettered, as the mapping says; without a table it must
be a contract type.

The same ``InputMapping`` is built from a command line (``from_spec``, for CSV and JSONL
files: ``replay``, ``backtest``, ``calibrate``) or from a configuration table
(``from_config``, per Kafka topic), and the presets ``segment`` and ``cloudevents`` need no
field paths at all. Whatever the source, a mapped record becomes a contract dict that goes
through the contract's own validation (``telemetry.codec.event_from_mapping``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from telemetry.codec import (
    MIN_TS_MS,
    OFFLINE_MIN_TS_MS,
    BadEvent,
    event_from_mapping,
    parse_record,
    parse_ts,
)
from windows.telemetry import COUNT_TYPES, EventType, TelemetryEvent

#: the contract fields a mapping can fill; ``attrs.NAME`` fills one attribute, and
#: ``amount`` is ``attrs.amount``: the money or seats a count event stands for
FIELDS = ("event_id", "account_id", "type", "ts", "value", "user_id", "amount")
PRESETS = ("contract", "fields", "segment", "cloudevents")
UNKNOWN_EVENT_POLICIES = ("skip", "dead_letter")
#: why a mapped record was skipped on purpose (counted, never dead-lettered)
SKIP_REASONS = ("unknown_event", "call_type", "no_facts")
#: what a mapping can refuse a record for, besides the contract's own reasons
MAPPING_REASONS = ("unknown_event",)
_TYPES = {t.value: t for t in EventType}
#: account facts that Segment group and identify calls carry as traits, by default under
#: the same names
FACT_TRAITS = ("plan", "seats", "segment", "renewal_date", "contract_start", "api_driven")
#: attributes whose CSV text is read as a number, or as true/false
_NUMERIC_ATTRS = frozenset(
    {"seats", "days_late", "csat", "response_hours", "errors", "score", "amount"}
)
_BOOLEAN_ATTRS = frozenset({"api_driven"})
_DATE_ATTRS = frozenset({"renewal_date", "contract_start"})
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NAIVE_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?"
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


class MappingError(ValueError):
    """A mapping that cannot be built; the message names the key (and the topic)."""


class Skipped(Exception):
    """A record the mapping leaves out on purpose; ``reason`` is one of ``SKIP_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """Where a field's value comes from: paths tried in order, or a constant."""

    paths: tuple[tuple[str, ...], ...] = ()
    const: str | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str, key: str) -> Source:
        if not isinstance(text, str) or not text.strip():
            raise MappingError(f"{key}: expected a path, a column or const:VALUE, got {text!r}")
        text = text.strip()
        if text.startswith("const:"):
            return cls(const=text[len("const:") :], text=text)
        paths = []
        for alternative in text.split("|"):
            alternative = alternative.strip()
            if not alternative or any(not part for part in alternative.split(".")):
                raise MappingError(f"{key}: {text!r} has an empty path")
            paths.append((alternative, *alternative.split(".")))
        return cls(paths=tuple(paths), text=text)

    def find(self, record: Mapping[str, Any]) -> tuple[Any, str]:
        """The value (None when absent or empty) and the path it was looked for at."""
        if self.const is not None:
            return self.const, self.text
        for whole, *parts in self.paths:
            value = record.get(whole)
            if value is None and len(parts) > 1:
                value = record
                for part in parts:
                    value = value.get(part) if isinstance(value, Mapping) else None
                    if value is None:
                        break
            if value is not None and value != "":
                return value, whole
        return None, self.text


@dataclass(frozen=True)
class EventRule:
    """What one source event name becomes: a contract type and field sources of its own."""

    type: EventType
    fields: Mapping[str, Source] = field(default_factory=dict)


_KNOWN_KEYS = frozenset(
    {
        "topic",
        "preset",
        "fields",
        "events",
        "unknown_events",
        "account_trait",
        "account_extension",
        "traits",
    }
)


def _check_keys(table: Mapping[str, Any], where: str) -> None:
    for key in table:
        if key not in _KNOWN_KEYS:
            raise MappingError(
                f"{where}: {key}: unknown key (known: {', '.join(sorted(_KNOWN_KEYS))})"
            )


def _preset_options(table: Mapping[str, Any], preset: str, where: str) -> Mapping[str, str]:
    """Check the keys only some presets take; return the Segment traits named for facts."""
    for key in ("account_trait", "account_extension"):
        if not isinstance(table.get(key, ""), str):
            raise MappingError(f"{where}: {key}: expected a string")
    if "account_trait" in table and preset != "segment":
        raise MappingError(f"{where}: account_trait: only for preset = 'segment'")
    if "account_extension" in table and preset != "cloudevents":
        raise MappingError(f"{where}: account_extension: only for preset = 'cloudevents'")
    traits = table.get("traits", {})
    if not isinstance(traits, Mapping) or any(
        k not in FACT_TRAITS or not isinstance(v, str) or not v for k, v in traits.items()
    ):
        raise MappingError(
            f'{where}: traits: expected FACT = "trait name" for facts among '
            f"{', '.join(FACT_TRAITS)}"
        )
    if traits and preset != "segment":
        raise MappingError(f"{where}: traits: only for preset = 'segment'")
    return traits


def _events(table: Mapping[str, Any], preset: str, where: str) -> dict[str, Any] | None:
    """The event-name rules: Segment's defaults under what the table gives, or None."""
    events = None
    if "events" in table or preset == "segment":
        raw_events = dict(_SEGMENT_EVENTS) if preset == "segment" else {}
        given = table.get("events", {})
        if not isinstance(given, Mapping):
            raise MappingError(f"{where}: events: expected a table of NAME = TYPE")
        raw_events.update(given)
        events = _rules(raw_events, f"{where}: events")
    return events


@dataclass(frozen=True)
class InputMapping:
    """How records of one source (a topic or a file) become contract events."""

    preset: str = "fields"
    fields: Mapping[str, Source] = field(default_factory=dict)
    events: Mapping[str, EventRule] | None = None
    unknown_events: str = "skip"
    #: Segment: the group or identify trait, or track property, that holds the account id
    account_trait: str = ""
    #: CloudEvents: the extension attribute that holds the account id ("": ``subject``)
    account_extension: str = ""
    #: Segment: fact name -> trait name
    fact_traits: Mapping[str, str] = field(default_factory=dict)
    #: what the records are called in errors: ``field`` (JSON) or ``column`` (CSV)
    noun: str = "field"

    # -- building ---------------------------------------------------------------------

    @classmethod
    def contract(cls) -> InputMapping:
        """The identity: records already in the event contract."""
        return cls(preset="contract")

    @classmethod
    def from_spec(cls, spec: str) -> InputMapping:
        """The command-line form: ``ts=date,account_id=customer,type=const:login,value=n``.

        Besides field sources it takes ``preset=segment|cloudevents`` and
        ``unknown_events=skip|dead_letter``."""
        table: dict[str, Any] = {"fields": {}}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, source = item.partition("=")
            key = key.strip()
            if not sep:
                raise MappingError(f"--map: {item!r}: expected FIELD=SOURCE (for example ts=date)")
            if key in ("preset", "unknown_events", "account_trait", "account_extension"):
                table[key] = source.strip()
            else:
                table["fields"][key] = source.strip()
        return cls.from_config(table, where="--map")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], where: str = "mapping") -> InputMapping:
        """The configuration form: a TOML table (see ``docs/inputs.md``).

        ``where`` prefixes every error, for example ``inputs[segment-events]``."""
        _check_keys(table, where)
        preset = table.get("preset", "fields" if "fields" in table else "contract")
        if preset not in PRESETS:
            raise MappingError(f"{where}: preset: {preset!r} (use one of {', '.join(PRESETS)})")
        unknown = table.get("unknown_events", "skip")
        if unknown not in UNKNOWN_EVENT_POLICIES:
            raise MappingError(f"{where}: unknown_events: {unknown!r} (use skip or dead_letter)")
        raw_fields = table.get("fields", {})
        if not isinstance(raw_fields, Mapping):
            raise MappingError(f"{where}: fields: expected a table of FIELD = SOURCE")
        fields_ = _sources(raw_fields, f"{where}: fields")
        if preset == "contract" and (fields_ or "events" in table):
            raise MappingError(
                f"{where}: preset: 'contract' takes records as they are; "
                "give preset = 'fields' to map fields"
            )
        if preset == "fields":
            for required in ("account_id", "ts", "type"):
                if required not in fields_:
                    raise MappingError(
                        f"{where}: fields.{required}: required (a path, a column or const:VALUE)"
                    )
        traits = _preset_options(table, preset, where)
        events = _events(table, preset, where)
        _check_amount_types(fields_, events, where)
        fields_ = {**_PRESET_FIELDS.get(preset, {}), **fields_}
        trait, extension = table.get("account_trait", ""), table.get("account_extension", "")
        if trait and "account_id" not in raw_fields:
            fields_["account_id"] = Source.parse(
                f"{fields_['account_id'].text}|properties.{trait}|context.traits.{trait}",
                f"{where}: account_trait",
            )
        if extension and "account_id" not in raw_fields:
            fields_["account_id"] = Source.parse(extension, f"{where}: account_extension")
        return cls(
            preset=preset,
            fields=fields_,
            events=events,
            unknown_events=unknown,
            account_trait=trait,
            account_extension=extension,
            fact_traits={fact: traits.get(fact, fact) for fact in FACT_TRAITS},
        )

    def for_csv(self) -> InputMapping:
        """The same mapping, naming columns in its errors."""
        return replace(self, noun="column")

    # -- applying ---------------------------------------------------------------------

    def apply(self, record: Mapping[str, Any], *, min_ts_ms: int = MIN_TS_MS) -> dict[str, Any]:
        """The contract dict for one source record; times before ``min_ts_ms`` are refused.

        Raises ``BadEvent`` (named field or column) for a record it cannot map, and
        ``Skipped`` for one it leaves out on purpose."""
        if self.preset == "contract":
            return dict(record)
        if self.preset == "segment":
            call = record.get("type")
            if call in ("group", "identify"):
                return self._segment_facts(record, call, min_ts_ms)
            if call != "track":
                raise Skipped("call_type", f"segment {call!r} calls carry no health signal")
        return self._mapped(record, min_ts_ms)

    def decode(
        self, raw: bytes, *, min_ts_ms: int = MIN_TS_MS
    ) -> tuple[dict[str, Any], TelemetryEvent]:
        """One record's bytes to its contract dict (``ts`` in epoch ms) and event; by
        default with the live bound on times (from 2000)."""
        record = parse_record(raw)
        contract = self.apply(record, min_ts_ms=min_ts_ms)
        event = event_from_mapping(contract, min_ts_ms=min_ts_ms)
        if "ts" in contract:
            contract["ts"] = event.ts_ms
        return contract, event

    def _mapped(self, record: Mapping[str, Any], min_ts_ms: int) -> dict[str, Any]:
        name, where = self._find("type", self.fields, record, required=True)
        sources = self.fields
        if self.events is None:
            etype = name
        else:
            rule = self.events.get(str(name))
            if rule is None:
                message = (
                    f"event name {name!r:.80} (at {self._at(where)}) is not in the events table"
                )
                if self.unknown_events == "skip":
                    raise Skipped("unknown_event", message)
                raise BadEvent("unknown_event", message)
            etype = rule.type.value
            if rule.fields:
                sources = {**sources, **rule.fields}
        out: dict[str, Any] = {"type": etype}
        attrs: dict[str, Any] = {}
        for key in sources:
            if key == "type":
                continue
            value, where = self._find(key, sources, record, required=key in ("account_id", "ts"))
            if value is None:
                continue
            at = self._at(where)
            if key == "amount" or key.startswith("attrs."):
                name = key.removeprefix("attrs.")
                attrs[name] = _attr(name, value, at)
            elif key == "ts":
                out[key] = _time(value, at, min_ts_ms)
            else:
                out[key] = _coerce(key, value, at)
            if key in ("value", "amount"):
                _fits_type(etype, key, out.get(key), where, at)
        if attrs:
            out["attrs"] = attrs
        if "event_id" not in out:
            out["event_id"] = derived_id(record)
        return out

    def _segment_facts(
        self, record: Mapping[str, Any], call: str, min_ts_ms: int
    ) -> dict[str, Any]:
        traits = record.get("traits")
        if not isinstance(traits, Mapping):
            context = record.get("context")
            traits = context.get("traits") if isinstance(context, Mapping) else None
        traits = traits if isinstance(traits, Mapping) else {}
        account = record.get("groupId") if call == "group" else None
        if account in (None, "") and self.account_trait:
            account = traits.get(self.account_trait)
        if account in (None, ""):
            context = record.get("context")
            account = context.get("groupId") if isinstance(context, Mapping) else None
        attrs: dict[str, Any] = {}
        for fact, trait in self.fact_traits.items():
            value = traits.get(trait)
            if value is not None and value != "":
                attrs[fact] = _attr(fact, value, self._at(f"traits.{trait}"))
        if not attrs:
            raise Skipped("no_facts", f"segment {call} call with no account fact among its traits")
        if account in (None, ""):
            if call == "identify":
                raise Skipped("no_facts", "segment identify call names no account")
            raise BadEvent("missing_field", f"{self._at('groupId')} is missing")
        ts, where = self._find("ts", self.fields, record, required=True)
        event_id, _ = self._find("event_id", self.fields, record, required=False)
        return {
            "event_id": _text(event_id) if event_id else derived_id(record),
            "account_id": _text(account),
            "type": EventType.ACCOUNT_FACTS.value,
            "ts": _time(ts, self._at(where), min_ts_ms),
            "attrs": attrs,
        }

    def _find(
        self, key: str, sources: Mapping[str, Source], record: Mapping[str, Any], *, required: bool
    ) -> tuple[Any, str]:
        source = sources.get(key)
        if source is None:
            if required:
                raise BadEvent("missing_field", f"{key} has no source in the mapping")
            return None, ""
        value, where = source.find(record)
        if value is None and required:
            if len(source.paths) > 1:
                tried = ", ".join(repr(path[0]) for path in source.paths)
                raise BadEvent("missing_field", f"no {key}: none of {self.noun}s {tried} is set")
            state = "is empty" if self.noun == "column" else "is missing"
            raise BadEvent("missing_field", f"{self._at(where)} {state} ({key})")
        return value, where

    def _at(self, where: str) -> str:
        return f"{self.noun} {where!r}"


def _sources(table: Mapping[str, Any], where: str) -> dict[str, Source]:
    out = {}
    for key, text in table.items():
        if key not in FIELDS and not (key.startswith("attrs.") and len(key) > len("attrs.")):
            raise MappingError(
                f"{where}.{key}: not a contract field (use {', '.join(FIELDS)} or attrs.NAME)"
            )
        out[key] = Source.parse(text, f"{where}.{key}")
    return out


def _check_amount_types(
    fields: Mapping[str, Source], events: Mapping[str, EventRule] | None, where: str
) -> None:
    """``amount`` only where the type is a count: other types carry theirs in ``value``."""
    counts = ", ".join(sorted(t.value for t in COUNT_TYPES))
    given = fields.get("type")
    if "amount" in fields and events is None and given is not None and given.const is not None:
        if _TYPES.get(given.const) not in COUNT_TYPES:
            raise MappingError(
                f"{where}: fields.amount: only for count types ({counts}); "
                f"a {given.const} event carries its amount in value"
            )
    for name, rule in (events or {}).items():
        if "amount" in rule.fields and rule.type not in COUNT_TYPES:
            raise MappingError(
                f"{where}: events.{name!r}: amount: only for count types ({counts}); "
                f"a {rule.type.value} event carries its amount in value"
            )


def _fits_type(type_name: Any, key: str, value: Any, path: str, at: str) -> None:
    """An amount only on a count type, and a count whole. A type found in the data is
    known only here; a price mapped to ``value`` is refused with the way to map it."""
    etype = _TYPES.get(type_name) if isinstance(type_name, str) else None
    if etype is None:
        return  # the contract refuses the type itself
    if key == "amount" and etype not in COUNT_TYPES:
        raise BadEvent(
            "bad_attrs",
            f"{at}: amount is only for count types; a {etype.value} event carries its "
            "amount in value",
        )
    fraction = isinstance(value, float) and math.isfinite(value) and not value.is_integer()
    if key == "value" and etype in COUNT_TYPES and fraction:
        raise BadEvent(
            "bad_value",
            f"{at}: {value!r} is not a whole number, and {etype.value} counts are: map money "
            f"or seats with amount={path} (attrs.amount) instead of value={path}",
        )


def _rules(table: Mapping[str, Any], where: str) -> dict[str, EventRule]:
    rules = {}
    for name, entry in table.items():
        key = f"{where}.{name!r}"
        if isinstance(entry, str):
            entry = {"type": entry}
        if not isinstance(entry, Mapping):
            raise MappingError(f"{key}: expected a type name or a table with type = …")
        type_name = entry.get("type")
        etype = _TYPES.get(type_name) if isinstance(type_name, str) else None
        if etype is None or etype is EventType.TICK:
            raise MappingError(
                f"{key}: type {type_name!r} is not an event type "
                f"(use one of {', '.join(t.value for t in EventType if t is not EventType.TICK)})"
            )
        extra = {k: v for k, v in entry.items() if k != "type"}
        if "type" in extra:
            raise MappingError(f"{key}: type is given once")
        rules[str(name)] = EventRule(etype, _sources(extra, key))
    return rules


def _text(value: Any) -> Any:
    """Ids as text: a number becomes its digits; anything else is left for the contract."""
    if type(value) is int:
        return str(value)
    return value


def _coerce(key: str, value: Any, where: str) -> Any:
    """A found value in the contract's type: CSV text read as numbers (``ts`` is read by
    ``_time``)."""
    if key in ("event_id", "account_id", "user_id"):
        return _text(value)
    if key == "value" and isinstance(value, str):
        return _number(value, where)
    return value


def _number(text: str, where: str) -> float | int:
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        raise BadEvent("bad_value", f"{where}: {text!r:.80} is not a number") from None
    if not math.isfinite(number):
        raise BadEvent("bad_value", f"{where}: {text!r:.80} is not a finite number")
    return number


def _time(value: Any, where: str, min_ts_ms: int) -> int:
    """Epoch ms; also text of epoch ms, a bare date, or a date-time without offset (UTC)."""
    try:
        if isinstance(value, str):
            text = value.strip()
            if _INTEGER.fullmatch(text):
                value = int(text)
            elif _NAIVE_TS.fullmatch(text):
                naive = datetime.fromisoformat(text.replace(",", "."))
                value = naive.replace(tzinfo=UTC).isoformat()
            else:
                value = text
        return parse_ts(value, where, min_ts_ms=min_ts_ms)
    except ValueError as exc:  # also a date the calendar does not have: 1997-13-01
        if isinstance(exc, BadEvent):
            raise
        raise BadEvent("bad_ts", f"{where}: {value!r:.80} is not a valid time") from None


def _attr(name: str, value: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    if name in _NUMERIC_ATTRS:
        return _number(value, where)
    if name in _BOOLEAN_ATTRS:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise BadEvent("bad_attrs", f"{where}: {value!r:.80} is not true or false")
    if name in _DATE_ATTRS and len(value) > 10 and _ISO_DATE.fullmatch(value[:10]):
        return value[:10]  # a date-time trait: its calendar date
    return value


def derived_id(record: Mapping[str, Any]) -> str:
    """A stable event id for a record that has none: the hash of its whole content.

    Two records equal in every field are then one event, and a record read twice (a file
    replayed, a topic re-read) keeps its id, so the core drops the repeat."""
    digest = hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=12)
    return "h:" + digest.hexdigest()


_PRESET_FIELDS: dict[str, dict[str, Source]] = {
    "segment": _sources(
        {
            "event_id": "messageId",
            "account_id": "context.groupId|groupId|properties.groupId",
            "type": "event",
            "ts": "timestamp|originalTimestamp|receivedAt",
            "user_id": "userId|anonymousId",
        },
        "segment",
    ),
    "cloudevents": _sources(
        {
            "event_id": "id",
            "account_id": "subject",
            "type": "type",
            "ts": "time",
            "user_id": "data.user_id|data.userId",
        },
        "cloudevents",
    ),
}
#: Segment's spec names for sign-ins; every other track event needs an entry in ``events``
_SEGMENT_EVENTS = {"Signed In": "login"}


# -- files --------------------------------------------------------------------------------

FORMATS = ("jsonl", "csv")


def file_format(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise MappingError(f"format: {fmt!r} (use jsonl or csv)")
        return fmt
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


def read_events(
    path: str,
    mapping: InputMapping | None = None,
    fmt: str | None = None,
    *,
    min_ts_ms: int = OFFLINE_MIN_TS_MS,
) -> Iterator[tuple[int, TelemetryEvent | BadEvent]]:
    """Every record of a JSONL or CSV file as ``(row, event)`` or ``(row, BadEvent)``.

    Rows are numbered from 1 (a CSV's header is row 1, its first record row 2, as a
    spreadsheet shows them). Rows the mapping skips on purpose are not yielded; a rejected
    row's message starts with ``row N:``. CSV needs a mapping; JSONL without one is the
    event contract. ``-`` reads standard input. Files are history: times from 1970 on are
    taken unless ``min_ts_ms`` says otherwise."""
    for row, outcome in read_mapped(path, mapping, fmt, min_ts_ms=min_ts_ms):
        if isinstance(outcome, Skipped):
            continue
        yield row, outcome


def read_mapped(
    path: str,
    mapping: InputMapping | None = None,
    fmt: str | None = None,
    *,
    min_ts_ms: int = OFFLINE_MIN_TS_MS,
) -> Iterator[tuple[int, TelemetryEvent | BadEvent | Skipped]]:
    """Like ``read_events``, also yielding each skipped row's ``Skipped``."""
    fmt = file_format(path, fmt)
    if fmt == "csv":
        if mapping is None:
            raise MappingError(
                f"{path}: a CSV file needs --map to say which column is which contract field, "
                "e.g. --map account_id=customer,ts=date,type=const:value_action "
                "(see docs/inputs.md)"
            )
        yield from _read_csv(path, mapping.for_csv(), min_ts_ms)
        return
    mapping = mapping or InputMapping.contract()
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for row, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            yield row, _outcome(row, mapping, line, min_ts_ms)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _outcome(
    row: int, mapping: InputMapping, raw: bytes | dict[str, Any], min_ts_ms: int
) -> TelemetryEvent | BadEvent | Skipped:
    try:
        if isinstance(raw, bytes):
            return mapping.decode(raw, min_ts_ms=min_ts_ms)[1]
        return event_from_mapping(mapping.apply(raw, min_ts_ms=min_ts_ms), min_ts_ms=min_ts_ms)
    except BadEvent as exc:
        return BadEvent(exc.reason, f"row {row}: {exc}")
    except Skipped as exc:
        return Skipped(exc.reason, f"row {row}: {exc}")


def _read_csv(
    path: str, mapping: InputMapping, min_ts_ms: int
) -> Iterator[tuple[int, TelemetryEvent | BadEvent | Skipped]]:
    text = (
        io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        if path == "-"
        else open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    )
    try:
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
        wanted = {
            source_path[0]
            for source in mapping.fields.values()
            for source_path in source.paths
            if len(source.paths) == 1
        }
        missing = sorted(c for c in wanted if c not in header)
        if missing:
            raise MappingError(
                f"{path}: column {missing[0]!r} is not in the header "
                f"(columns: {', '.join(header) or 'none'})"
            )
        for row, record in enumerate(reader, 2):
            if None in record:
                yield row, BadEvent("bad_field", f"row {row}: more cells than the header has")
                continue
            yield row, _outcome(row, mapping, record, min_ts_ms)
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    finally:
        if path != "-":
            text.close()
