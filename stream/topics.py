"""The topics the project creates, with the configs a real cluster needs, and the worker's
start-up check that its table changelogs are compacted.

A changelog must be compacted: it holds each account's latest snapshot for as long as the
account exists. Under Kafka's default ``cleanup.policy=delete`` an account that has not
changed for ``retention.ms`` (7 days) loses its snapshot, and a restarted worker starts it
from nothing. The other topics are streams, kept for a stated time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError, for_code

from stream.kafka import admin_client, client_options, create_topics
from stream.settings import Settings

DAY_MS = 24 * 60 * 60 * 1000
#: the worker's tables (``app.Table(name)`` in ``stream.app``)
TABLES = ("accounts",)
#: a changelog: compacted, and in segments of 64 MiB (Kafka's default is 1 GiB), since
#: Kafka never compacts a log's newest segment and a worker taking a partition reads all of
#: it: about 32,000 snapshots of 2 KB, not 500,000 (docs/performance.md, the scale model)
CHANGELOG_SEGMENT_BYTES = 64 * 1024 * 1024
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": str(CHANGELOG_SEGMENT_BYTES)}
#: input events: a week to replay after a bad deployment or to backtest recent days
INPUT_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
#: score changes: two weeks for a downstream consumer to be down and catch up
OUTPUT_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)}
#: records that could not be applied: a month for someone to look at them and replay them
DEAD_LETTER_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}


class TopicConfigError(RuntimeError):
    """A topic the worker needs is configured so that it would lose state."""


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog Faust keeps for a table: ``<app-id>-<table>-changelog``."""
    return f"{settings.app_id}-{table}-changelog"


def topic_layout(settings: Settings) -> dict[str, int]:
    """Every topic the worker uses, with its partition count, to create up front."""
    return {
        settings.input_topic: settings.partitions,
        **{changelog_topic(settings, table): settings.partitions for table in TABLES},
        settings.output_topic: settings.partitions,
        settings.dead_letter_topic: 1,
    }


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The configs of every topic of ``topic_layout``."""
    return {
        settings.input_topic: INPUT_CONFIGS,
        **{changelog_topic(settings, table): COMPACTED for table in TABLES},
        settings.output_topic: OUTPUT_CONFIGS,
        settings.dead_letter_topic: DEAD_LETTER_CONFIGS,
    }


async def create_worker_topics(settings: Settings) -> None:
    """Create the missing topics of ``topic_layout`` with their configs."""
    await create_topics(
        settings.bootstrap_servers,
        topic_layout(settings),
        topic_configs(settings),
        client_options(settings),
    )


def table_changelogs(app: Any) -> list[str]:
    """The changelog topics of a Faust app's tables."""
    return sorted(table.changelog_topic.get_topic_name() for table in app.tables.values())


async def cleanup_policies(admin: Any, topics: Iterable[str]) -> dict[str, str | None]:
    """``cleanup.policy`` of each topic that exists, as the broker reports it (None: it
    reports none, as Tansu does for a setting left at its default)."""
    existing = set(await admin.list_topics())
    wanted = sorted(set(topics) & existing)
    if not wanted:
        return {}
    # every config: Tansu cannot parse a request that names the ones it wants
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
    policies: dict[str, str | None] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            error = for_code(resource["error_code"]) if resource["error_code"] else None
            if error is UnknownTopicOrPartitionError:
                continue  # deleted since it was listed: Faust creates it compacted
            if error is not None:
                raise error(f"describing topic {resource['resource_name']}")
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            policies[resource["resource_name"]] = entries.get("cleanup.policy")
    return policies


def refuse_uncompacted(policies: Mapping[str, str | None], bootstrap: str) -> list[str]:
    """Raise TopicConfigError for a changelog whose policy is not ``compact``; return a
    warning for each one whose policy the broker does not report."""
    bad = {name: policy for name, policy in policies.items() if policy and policy != "compact"}
    if bad:
        name, policy = sorted(bad.items())[0]
        raise TopicConfigError(
            f"the changelog topic {name} has cleanup.policy={policy}, not compact: the broker "
            "would delete account snapshots once they are older than retention.ms, and a "
            "restarted worker would start those accounts from nothing. Make it compacted, e.g. "
            f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
            f"--entity-name {name} --add-config cleanup.policy=compact"
        )
    return [
        f"the broker does not report the cleanup.policy of the changelog topic {name} "
        "(a Kafka broker's default is delete): make sure it is compact"
        for name, policy in sorted(policies.items())
        if policy is None
    ]


async def check_changelogs(
    settings: Settings, changelogs: Iterable[str], report: Callable[[str], None]
) -> None:
    """Refuse to start on a changelog that is not compacted (TopicConfigError); a changelog
    that does not exist yet is fine: Faust creates it compacted. When the configs cannot be
    read (an ACL without DescribeConfigs, say), say so and go on."""
    admin = admin_client(settings.bootstrap_servers, client_options(settings))
    try:
        async with asyncio.timeout(30):
            await admin.start()
            policies = await cleanup_policies(admin, changelogs)
    except (KafkaError, OSError, TimeoutError) as exc:
        report(f"cannot read the changelogs' configs ({exc!r}): make sure they are compact")
        return
    finally:
        await admin.close()
    for warning in refuse_uncompacted(policies, settings.bootstrap_servers):
        report(warning)
