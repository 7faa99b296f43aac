"""The steady bench's framework-native peer: a plain Faust app over the worker's input topic.

One agent, one table keyed by account id whose value is a dict of daily buckets
(``{event type: {day: count}}``), updated per event and assigned back so that Faust writes
the account's new value to the table's changelog, as Faust's documentation writes a
table-updating agent. No batching, no write-behind, none of the worker's private hooks:
what Faust itself gives a per-event stateful agent.

Run by ``bench/steady.py`` as ``python bench/faust_peer.py worker``; configured by the
environment (``PEER_*`` below), with the worker's Kafka settings where they map
(``peer_options``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import faust
import orjson

from stream.app import app_options
from stream.settings import Settings

MS_PER_DAY = 86_400_000
#: the environment variables the peer is configured by
PEER_BOOTSTRAP = "BENCH_PEER_BOOTSTRAP"
PEER_APP_ID = "BENCH_PEER_APP_ID"
PEER_TOPIC = "BENCH_PEER_TOPIC"
PEER_TABLE = "BENCH_PEER_TABLE"
PEER_PARTITIONS = "BENCH_PEER_PARTITIONS"
PEER_DATADIR = "BENCH_PEER_DATADIR"

#: the worker's Faust settings that mean the same for any Faust app: the group's timeouts,
#: the batch and fetch sizes, where a new group starts. Commits (``broker_commit_every``,
#: ``broker_commit_interval``) are Faust's defaults in both. What the worker sets through
#: Faust's private hooks (its batched consumer and recovery, a 20 ms fetch wait) has no
#: public setting and is left out.
SHARED_OPTIONS = (
    "broker",
    "broker_credentials",
    "topic_partitions",
    "consumer_auto_offset_reset",
    "broker_session_timeout",
    "broker_heartbeat_interval",
    "broker_rebalance_timeout",
    "broker_max_poll_records",
    "consumer_max_fetch_size",
    "producer_max_batch_size",
    "table_standby_replicas",
    "autodiscover",
)


def peer_settings(env: Mapping[str, str]) -> Settings:
    """The worker's settings for the peer's broker, group and topic."""
    return Settings(
        bootstrap_servers=env.get(PEER_BOOTSTRAP, "localhost:9092"),
        app_id=env.get(PEER_APP_ID, "bench-faust-peer"),
        input_topic=env.get(PEER_TOPIC, "telemetry"),
        partitions=int(env.get(PEER_PARTITIONS, "4")),
    )


def peer_options(settings: Settings, datadir: str) -> dict[str, Any]:
    """Faust's configuration of the peer: the worker's where it maps, a memory store, no web."""
    worker = app_options(settings)
    return {
        **{name: worker[name] for name in SHARED_OPTIONS},
        "store": "memory://",
        "datadir": datadir,
        "web_enabled": False,
    }


settings = peer_settings(os.environ)
app = faust.App(
    settings.app_id,
    **peer_options(settings, os.environ.get(PEER_DATADIR, f"{settings.app_id}-data")),
)
topic = app.topic(
    settings.input_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
buckets = app.Table(
    os.environ.get(PEER_TABLE, "buckets"),
    default=dict,
    partitions=settings.partitions,
    key_type=str,
    value_type=dict,
)


@app.agent(topic)
async def count(stream: Any) -> None:
    """Each event's count into its account's bucket of its type and day; ticks skipped."""
    async for value in stream:
        event = orjson.loads(value)
        if event["type"] == "tick":
            continue
        account_id = event["account_id"]
        bucket = buckets[account_id]
        series = bucket.setdefault(event["type"], {})
        day = event["ts"] // MS_PER_DAY
        series[day] = series.get(day, 0) + 1
        buckets[account_id] = bucket


if __name__ == "__main__":
    app.main()
