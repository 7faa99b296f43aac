"""Source topics in Segment and CloudEvents shapes, mapped by the worker, through the broker.

One history is split three ways: a third of its accounts sent in the event contract to the
input topic, a third as Segment track and group calls, a third as CloudEvents. The worker
must emit exactly the outputs that replay of the whole history in the contract gives, and
dead-letter or count the source records it cannot map.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from kafka_io import fresh_settings, read_outputs, read_until_quiet

from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from sinks import MemorySink
from stream.kafka import create_topics
from stream.settings import build_engine, load_settings
from windows.telemetry import EventType

pytestmark = pytest.mark.integration
#: every attribute the generator writes, mapped from the source's properties or data
ATTRS = ("feature", "errors", "integration", "ticket_id", "csat", "days_late", "amount")
ATTRS += ("response_hours", "status")
FACTS = ("segment", "plan", "seats", "contract_start", "renewal_date", "api_driven")


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")


def segment_name(event_type: str) -> str:
    return "Signed In" if event_type == "login" else event_type.replace("_", " ").title()


def as_segment(event: dict[str, Any]) -> dict[str, Any]:
    """The same behaviour as a Segment call: facts as a group call, the rest as tracks."""
    if event["type"] == "account_facts":
        return {
            "type": "group",
            "groupId": event["account_id"],
            "traits": {"name": "Some Company", **event["attrs"]},
            "messageId": event["event_id"],
            "timestamp": iso(event["ts"]),
        }
    call = {
        "type": "track",
        "event": segment_name(event["type"]),
        "context": {"groupId": event["account_id"]},
        "properties": {"count": event["value"], **event.get("attrs", {})},
        "messageId": event["event_id"],
        "originalTimestamp": iso(event["ts"]),
    }
    if event.get("user_id"):
        call["userId"] = event["user_id"]
    return call


def as_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    data = {"count": event["value"], **event.get("attrs", {})}
    if event.get("user_id"):
        data["user_id"] = event["user_id"]
    return {
        "specversion": "1.0",
        "id": event["event_id"],
        "source": "/product",
        "type": f"com.example.{event['type']}",
        "time": iso(event["ts"]),
        "acct": event["account_id"],
        "datacontenttype": "application/json",
        "data": data,
    }


def config_text(segment_topic: str, cloudevents_topic: str) -> str:
    types = [t.value for t in EventType if t not in (EventType.TICK, EventType.MANUAL_OVERRIDE)]
    lines = [
        "[[healthstream.inputs]]",
        f'topic = "{segment_topic}"',
        'preset = "segment"',
        "[healthstream.inputs.events]",
    ]
    for t in types:
        if t != "account_facts":
            attrs = ", ".join(f'"attrs.{a}" = "properties.{a}"' for a in ATTRS)
            rule = f'type = "{t}", value = "properties.count", {attrs}'
            lines.append(f'"{segment_name(t)}" = {{ {rule} }}')
    lines += [
        "[[healthstream.inputs]]",
        f'topic = "{cloudevents_topic}"',
        'preset = "cloudevents"',
        'account_extension = "acct"',
        'unknown_events = "dead_letter"',
        "[healthstream.inputs.events]",
    ]
    for t in types:
        attrs = ", ".join(f'"attrs.{a}" = "data.{a}"' for a in ATTRS + FACTS)
        lines.append(f'"com.example.{t}" = {{ type = "{t}", value = "data.count", {attrs} }}')
    return "\n".join(lines) + "\n"


async def produce_json(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_segment_and_cloudevents_topics_score_like_the_contract(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = fresh_settings(kafka_bootstrap, "mapped", metrics_port=port)
    segment_topic = f"segment-{settings.app_id}"
    cloudevents_topic = f"cloudevents-{settings.app_id}"
    config = tmp_path / "healthstream.toml"
    config.write_text(config_text(segment_topic, cloudevents_topic))
    assert len(load_settings(config).inputs) == 2  # the file the worker reads is valid

    history = list(generate(Scenario(accounts=12, days=21, ticks=False)))
    accounts = sorted({r["account_id"] for r in history})
    routes = {a: ("contract", "segment", "cloudevents")[n % 3] for n, a in enumerate(accounts)}
    native = [r for r in history if routes[r["account_id"]] == "contract"]
    segment = [r for r in history if routes[r["account_id"]] == "segment"]
    cloud = [r for r in history if routes[r["account_id"]] == "cloudevents"]
    assert native and segment and cloud

    expected = MemorySink()
    replay([orjson.dumps(r) for r in history], build_engine(settings), expected)
    want = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in expected.events)

    bad_segment = [
        {"type": "track", "event": "Signed In", "timestamp": "2026-01-05T10:00:00Z"},
        {"type": "track", "event": "Signed In", "context": {"groupId": "x"}, "timestamp": "soon"},
        {"type": "page", "name": "Home", "context": {"groupId": "x"}},
        {"type": "track", "event": "Video Watched", "context": {"groupId": "x"}},
    ]
    bad_cloud = [
        {"id": "c1", "type": "com.example.refund", "time": "2026-01-05T10:00:00Z", "acct": "x"},
    ]

    async def send_all() -> None:
        await create_topics(
            kafka_bootstrap, {segment_topic: 3, cloudevents_topic: 2, settings.input_topic: 4}
        )
        await produce_records(settings, native)
        await produce_json(
            kafka_bootstrap,
            segment_topic,
            [(r["account_id"].encode(), orjson.dumps(as_segment(r))) for r in segment]
            + [(b"bad", orjson.dumps(r)) for r in bad_segment],
        )
        await produce_json(
            kafka_bootstrap,
            cloudevents_topic,
            [(r["account_id"].encode(), orjson.dumps(as_cloudevent(r))) for r in cloud]
            + [(b"bad", orjson.dumps(r)) for r in bad_cloud]
            + [(b"bad", b"{not json")],
        )

    asyncio.run(send_all())
    with WorkerProcess(settings, tmp_path, config_file=config) as worker:
        outputs = read_outputs(kafka_bootstrap, settings.output_topic, 4, len(want), 150)
        got = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in outputs)
        assert got == want, worker.log_tail()
        dead = asyncio.run(read_until_quiet(kafka_bootstrap, settings.dead_letter_topic, 4))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()

    reasons = sorted(
        (dict(r.headers)["source_topic"].decode(), dict(r.headers)["reason"].decode()) for r in dead
    )
    assert reasons == [
        (cloudevents_topic, "not_json"),
        (cloudevents_topic, "unknown_event"),
        (segment_topic, "bad_ts"),
        (segment_topic, "missing_field"),
    ]
    logins = sum(1 for r in segment if r["type"] == "login")
    facts = sum(1 for r in cloud if r["type"] == "account_facts")
    assert f'healthstream_source_events_total{{topic="{segment_topic}",type="login"}} ' in metrics
    assert (
        f'healthstream_source_events_total{{topic="{segment_topic}",type="login"}} {logins:.1f}'
        in metrics
    )
    assert (
        f'healthstream_source_events_total{{topic="{cloudevents_topic}",type="account_facts"}} '
        f"{facts:.1f}" in metrics
    )
    assert 'healthstream_records_skipped_total{reason="call_type"} 1.0' in metrics
    assert 'healthstream_records_skipped_total{reason="unknown_event"} 1.0' in metrics
    assert 'healthstream_dead_letters_total{reason="unknown_event"} 1.0' in metrics
