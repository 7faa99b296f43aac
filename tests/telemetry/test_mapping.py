"""The mapping language: command-line and configuration forms, presets, CSV and JSONL files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from healthstream.cli import main
from healthstream.tools.replay import replay, replay_events
from sinks import MemorySink
from stream.settings import SettingsError, build_engine, load_settings
from telemetry.codec import BadEvent
from telemetry.mapping import InputMapping, MappingError, Skipped, read_events
from windows.telemetry import EventType

DOCS = Path(__file__).parents[2] / "docs" / "inputs"
SPEC = "ts=date,account_id=customer,type=const:value_action,value=amount"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_csv_rows_become_contract_events(tmp_path: Path) -> None:
    csv = write(
        tmp_path / "export.csv",
        "date,customer,amount\n2026-03-01,acme,3\n2026-03-02 10:30,acme,2.0\n"
        "1772445600000,globex,5\n",
    )
    rows = list(read_events(csv, InputMapping.from_spec(SPEC)))
    assert [row for row, _ in rows] == [2, 3, 4]  # the header is row 1, as a spreadsheet shows
    events = [e for _, e in rows]
    assert all(not isinstance(e, BadEvent) for e in events)
    first, second, third = events  # type: ignore[misc]
    assert (first.account_id, first.type, first.value) == ("acme", EventType.VALUE_ACTION, 3)
    assert first.ts_ms == 1772323200000  # a bare date is that day's midnight, UTC
    assert second.ts_ms == 1772323200000 + 86_400_000 + 37_800_000  # no offset: UTC
    assert third.ts_ms == 1772445600000 and third.account_id == "globex"
    # no event_id column: a stable id from the row's content, the same on every read
    again = [e for _, e in read_events(csv, InputMapping.from_spec(SPEC))]
    assert [e.event_id for e in again] == [e.event_id for e in events]  # type: ignore[union-attr]
    assert len({e.event_id for e in events}) == 3  # type: ignore[union-attr]


def test_csv_errors_name_the_row_and_the_column(tmp_path: Path) -> None:
    csv = write(
        tmp_path / "export.csv",
        "date,customer,amount\n2026-03-01,,3\n2026-03-01,acme,lots\n"
        "2026-03-01,acme,1,extra\nnot a date,acme,1\n",
    )
    got = [(row, e.reason, str(e)) for row, e in read_events(csv, InputMapping.from_spec(SPEC))]
    assert got == [
        (2, "missing_field", "row 2: column 'customer' is empty (account_id)"),
        (3, "bad_value", "row 3: column 'amount': 'lots' is not a number"),
        (4, "bad_field", "row 4: more cells than the header has"),
        (5, "bad_ts", "row 5: column 'date' is not ISO-8601 with a UTC offset: 'not a date'"),
    ]


def test_a_mapped_column_missing_from_the_header_is_named(tmp_path: Path) -> None:
    csv = write(tmp_path / "export.csv", "day,customer,amount\n2026-03-01,acme,3\n")
    with pytest.raises(MappingError, match=r"column 'date' is not in the header \(columns: day, "):
        list(read_events(csv, InputMapping.from_spec(SPEC)))


def test_csv_needs_a_mapping(tmp_path: Path) -> None:
    csv = write(tmp_path / "export.csv", "date\n2026-03-01\n")
    with pytest.raises(MappingError, match="needs --map"):
        list(read_events(csv))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ts=date,account_id=customer", r"--map: fields\.type: required"),
        ("ts=a,account_id=b,type=c,colour=d", r"fields\.colour: not a contract field"),
        ("ts=,account_id=b,type=c", r"fields\.ts: expected a path, a column or const:VALUE"),
        ("ts=a..b,account_id=b,type=c", r"fields\.ts: 'a\.\.b' has an empty path"),
        ("ts", r"--map: 'ts': expected FIELD=SOURCE"),
        ("preset=kafka", r"preset: 'kafka' \(use one of"),
        ("ts=a,account_id=b,type=c,unknown_events=drop", r"unknown_events: 'drop'"),
    ],
)
def test_bad_specs_name_the_key(spec: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        InputMapping.from_spec(spec)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"preset": "segment", "events": {"Signed In": "logged_in"}}, r"events\.'Signed In': type"),
        ({"preset": "segment", "events": {"X": {"value": "v"}}}, r"events\.'X': type None"),
        ({"preset": "segment", "events": {"X": {"type": "login", "colour": "c"}}}, "colour"),
        ({"preset": "cloudevents", "account_trait": "company"}, "account_trait: only for"),
        ({"preset": "segment", "account_extension": "acct"}, "account_extension: only for"),
        ({"preset": "segment", "traits": {"tier": "t"}}, r"traits: expected FACT"),
        ({"preset": "contract", "fields": {"ts": "time"}}, "takes records as they are"),
        ({"preset": "segment", "colour": 1}, "colour: unknown key"),
    ],
)
def test_bad_config_tables_name_the_topic_and_key(table: dict, message: str) -> None:
    with pytest.raises(MappingError, match=r"^inputs\[product\]: .*" + message):
        InputMapping.from_config(table, where="inputs[product]")


def test_segment_track_group_and_identify() -> None:
    mapping = InputMapping.from_config(
        {
            "preset": "segment",
            "account_trait": "company_id",
            "events": {"Feature Used": {"type": "feature_used", "attrs.feature": "properties.f"}},
        }
    )
    contract, event = mapping.decode(
        orjson.dumps(
            {
                "type": "track",
                "event": "Feature Used",
                "userId": "u1",
                "properties": {"company_id": 4711, "f": "reports"},
                "originalTimestamp": "2026-03-01T10:00:00.250Z",
                "messageId": "m-1",
            }
        )
    )
    assert event.account_id == "4711"  # a numeric id becomes text
    assert (event.event_id, event.type, event.user_id) == ("m-1", EventType.FEATURE_USED, "u1")
    assert event.attrs == {"feature": "reports"} and contract["ts"] == event.ts_ms
    _, facts = mapping.decode(
        orjson.dumps(
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"company_id": "acme", "plan": "pro", "seats": "12"},
                "timestamp": "2026-03-01T10:00:00Z",
            }
        )
    )
    assert facts.type is EventType.ACCOUNT_FACTS and facts.account_id == "acme"
    assert facts.attrs == {"plan": "pro", "seats": 12}
    assert facts.event_id.startswith("h:")  # no messageId: derived from the content
    with pytest.raises(Skipped) as skipped:
        mapping.apply({"type": "screen", "name": "Home"})
    assert skipped.value.reason == "call_type"


def test_unknown_names_are_skipped_or_refused_as_the_mapping_says() -> None:
    record = {"id": "1", "type": "com.x.y", "time": "2026-03-01T10:00:00Z", "subject": "acme"}
    skip = InputMapping.from_config({"preset": "cloudevents", "events": {}})
    with pytest.raises(Skipped, match="'com.x.y'"):
        skip.apply(record)
    refuse = InputMapping.from_config(
        {"preset": "cloudevents", "events": {}, "unknown_events": "dead_letter"}
    )
    with pytest.raises(BadEvent) as refused:
        refuse.apply(record)
    assert refused.value.reason == "unknown_event"


def test_settings_inputs_are_validated_with_the_topic_named(tmp_path: Path) -> None:
    config = tmp_path / "hs.toml"
    config.write_text(
        '[[healthstream.inputs]]\ntopic = "seg"\npreset = "segment"\n'
        '[healthstream.inputs.events]\n"Signed In" = "sign_in"\n'
    )
    with pytest.raises(SettingsError, match=r"inputs\[seg\]: events\.'Signed In': type 'sign_in'"):
        load_settings(config)
    config.write_text('[[healthstream.inputs]]\npreset = "segment"\n')
    with pytest.raises(SettingsError, match=r"inputs\[0\]: topic: required"):
        load_settings(config)
    config.write_text('[[healthstream.inputs]]\ntopic = "telemetry"\npreset = "segment"\n')
    with pytest.raises(SettingsError, match=r"inputs\[telemetry\]: topic: the worker's own"):
        load_settings(config)
    config.write_text('[[inputs]]\ntopic = "a"\npreset = "segment"\n' * 2)
    with pytest.raises(SettingsError, match=r"inputs\[a\]: topic: given twice"):
        load_settings(config)


def test_the_documented_example_config_loads() -> None:
    settings = load_settings(DOCS / "healthstream.toml")
    assert [i.topic for i in settings.inputs] == ["segment-events", "billing-events"]
    assert [i.mapping.preset for i in settings.inputs] == ["segment", "cloudevents"]


def test_map_check_on_the_documented_samples(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(DOCS / "healthstream.toml")
    sample = str(DOCS / "segment-sample.jsonl")
    code = main(["map-check", sample, "--config", config, "--source", "segment-events"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 1  # row 8 names no account
    assert lines[0].startswith('row 1: {"event_id":"seg-0001","account_id":"acme"')
    assert '"type":"account_facts"' in lines[0] and '"renewal_date":"2027-03-31"' in lines[0]
    assert '"type":"value_action","ts":1793613900000,"value":3' in lines[4]
    assert lines[5].startswith("skipped (call_type) row 6:")
    assert lines[6].startswith("skipped (unknown_event) row 7:")
    assert lines[7].startswith("rejected (missing_field) row 8: no account_id: none of")
    assert lines[8].startswith("skipped (no_facts) row 9:")
    assert "5 (account_facts 1, feature_used 1, login 1, value_action 2) mapped" in err
    code = main(
        ["map-check", str(DOCS / "cloudevents-sample.jsonl"), "--config", config, "--source"]
        + ["billing-events"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "rejected (unknown_event) row 4: event name 'com.example.refund.issued'" in out
    assert "rejected (bad_ts) row 5: field 'time'" in out
    assert main(["map-check", sample, "--config", config, "--source", "nope"]) == 2
    assert "--source nope: no such input" in capsys.readouterr().err


def test_replay_of_a_mapped_csv_equals_replay_of_the_same_events_as_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["date,customer,user,what,n"]
    contract = []
    for day in range(1, 29):
        for account, n in (("acme", 5), ("globex", 1 if day > 14 else 6)):
            ts = f"2026-02-{day:02d}T09:00:00+00:00"
            rows.append(f"{ts},{account},u-{account},value_action,{n}")
            rows.append(f"{ts},{account},u-{account},login,1")
            for kind, value in (("value_action", n), ("login", 1)):
                contract.append({"account_id": account, "user_id": f"u-{account}", "ts": ts})
                contract[-1].update(type=kind, value=value)
    csv = write(tmp_path / "export.csv", "\n".join(rows) + "\n")
    spec = "ts=date,account_id=customer,user_id=user,type=what,value=n"
    out = tmp_path / "mapped.jsonl"
    assert main(["replay", csv, "--map", spec, "--out", str(out)]) == 0
    mapped = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    # the same events in the contract, with the ids the mapping derives
    for record, (_, event) in zip(
        contract, read_events(csv, InputMapping.from_spec(spec)), strict=True
    ):
        record["event_id"] = event.event_id  # type: ignore[union-attr]
    expected = MemorySink()
    lines = [orjson.dumps(r) for r in contract]
    replay(lines, build_engine(load_settings()), expected)
    assert mapped == [event for _, event in expected.events]
    assert any(e["account_id"] == "globex" and e["kind"] == "score_changed" for e in mapped)
    # a row exported twice is one event: the second copy has the same derived id
    doubled = [
        record for record in read_events(csv, InputMapping.from_spec(spec)) for _ in range(2)
    ]
    _, stats = replay_events(doubled, build_engine(load_settings()), MemorySink())
    assert (stats.events, stats.duplicates) == (len(contract), len(contract))
    assert "replay:" in capsys.readouterr().err


# -- amounts, and history before 2000 ------------------------------------------------------

PURCHASES = "customer,date,cds,usd\n00002,1997-01-12,1,12.00\n00002,1997-01-12,5,77.00\n"


def test_an_amount_column_goes_into_attrs_amount(tmp_path: Path) -> None:
    csv = write(tmp_path / "purchases.csv", PURCHASES + "00004,1998-06-30,2,29.33\n")
    spec = "account_id=customer,ts=date,type=const:value_action,amount=usd"
    events = [e for _, e in read_events(csv, InputMapping.from_spec(spec))]
    assert [(e.value, e.attrs) for e in events] == [  # type: ignore[union-attr]
        (1, {"amount": 12.0}),  # value stays 1 when only the amount is mapped
        (1, {"amount": 77.0}),
        (1, {"amount": 29.33}),
    ]
    both = InputMapping.from_spec(spec + ",value=cds")
    assert [e.value for _, e in read_events(csv, both)] == [1, 5, 2]  # type: ignore[union-attr]


def test_a_price_mapped_to_value_is_told_to_use_amount(tmp_path: Path) -> None:
    csv = write(tmp_path / "purchases.csv", "customer,date,usd\n00002,1997-01-12,12.99\n")
    spec = "account_id=customer,ts=date,type=const:value_action,value=usd"
    [(row, refused)] = list(read_events(csv, InputMapping.from_spec(spec)))
    assert isinstance(refused, BadEvent) and refused.reason == "bad_value"
    assert str(refused) == (
        "row 2: column 'usd': 12.99 is not a whole number, and value_action counts are: "
        "map money or seats with amount=usd (attrs.amount) instead of value=usd"
    )


def test_an_amount_is_only_for_count_types(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"fields\.amount: only for count types .*in value"):
        InputMapping.from_spec("account_id=c,ts=d,type=const:invoice_paid,amount=usd")
    with pytest.raises(MappingError, match=r"events\.'Paid': amount: only for count types"):
        InputMapping.from_config(
            {"preset": "segment", "events": {"Paid": {"type": "invoice_paid", "amount": "p.x"}}}
        )
    csv = write(
        tmp_path / "mixed.csv",
        "c,d,t,usd\nacme,2026-03-01,login,3\nacme,2026-03-01,invoice_paid,9\n",
    )
    outcomes = list(read_events(csv, InputMapping.from_spec("account_id=c,ts=d,type=t,amount=usd")))
    assert outcomes[0][1].attrs == {"amount": 3}  # type: ignore[union-attr]
    refused = outcomes[1][1]
    assert isinstance(refused, BadEvent) and refused.reason == "bad_attrs"
    assert "amount is only for count types; a invoice_paid event" in str(refused)


def test_files_take_history_from_1970_and_live_records_from_2000(tmp_path: Path) -> None:
    csv = write(tmp_path / "purchases.csv", PURCHASES + "00004,1969-12-31,2,29.33\n")
    spec = "account_id=customer,ts=date,type=const:value_action,value=cds"
    outcomes = [e for _, e in read_events(csv, InputMapping.from_spec(spec))]
    assert [e.ts_ms for e in outcomes[:2]] == [853_027_200_000] * 2  # type: ignore[union-attr]
    assert isinstance(outcomes[2], BadEvent)
    assert "column 'date' '1969-12-31T00:00:00+00:00' is outside 1970-2200" in str(outcomes[2])
    record = orjson.dumps({"customer": "00002", "date": "1997-01-12", "cds": 1})
    with pytest.raises(BadEvent, match="outside 2000-2200"):
        InputMapping.from_spec(spec).decode(record)  # a source topic: live input


def test_map_check_on_a_1990s_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write(tmp_path / "purchases.csv", PURCHASES)
    spec = "account_id=customer,ts=date,type=const:value_action,value=cds,amount=usd"
    assert main(["map-check", csv, "--map", spec]) == 0
    out, err = capsys.readouterr()
    assert '"ts":853027200000,"value":5,"attrs":{"amount":77.0}' in out
    assert "2 (value_action 2) mapped, 0 skipped, 0 rejected" in err


def test_a_csv_without_a_mapping_is_told_what_to_give(tmp_path: Path) -> None:
    csv = write(tmp_path / "purchases.csv", PURCHASES)
    with pytest.raises(MappingError, match=r"needs --map .* e\.g\. --map account_id=customer,"):
        list(read_events(csv))


def test_a_date_the_calendar_does_not_have_is_a_bad_ts(tmp_path: Path) -> None:
    csv = write(tmp_path / "purchases.csv", "customer,date,cds\n00002,1997-13-01,1\n")
    spec = "account_id=customer,ts=date,type=const:value_action,value=cds"
    [(_, refused)] = list(read_events(csv, InputMapping.from_spec(spec)))
    assert isinstance(refused, BadEvent) and refused.reason == "bad_ts"
    assert str(refused) == "row 2: column 'date': '1997-13-01' is not a valid time"
