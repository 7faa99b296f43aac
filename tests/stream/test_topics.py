"""The topics the project creates and their configs, and the worker's refusal of a changelog
that is not compacted: the admin requests read back from the embedded broker, and the
decision on describe-configs answers a real Kafka gives."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAuthorizationFailedError
from kafka_io import fresh_settings

from healthstream.dev.process import WorkerProcess
from stream.app import create_app
from stream.kafka import create_topics
from stream.settings import Settings
from stream.topics import (
    TopicConfigError,
    cleanup_policies,
    create_worker_topics,
    refuse_uncompacted,
    table_changelogs,
    topic_configs,
    topic_layout,
)

ROOT = Path(__file__).resolve().parents[2]


class DescribeConfigsAnswer:
    """A DescribeConfigs response as aiokafka hands it over."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources

    def to_object(self) -> dict[str, Any]:
        return {"throttle_time_ms": 0, "resources": self.resources}


class FakeAdmin:
    """Answers list_topics and describe_configs as a Kafka broker would."""

    def __init__(self, topics: dict[str, dict[str, Any]]) -> None:
        #: topic -> {"error_code": int, "configs": {name: value}}; a real broker also
        #: reports the settings left at their defaults
        self.topics = topics
        self.asked: list[tuple[str, Any]] = []

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def describe_configs(self, resources: list[ConfigResource]) -> list[Any]:
        answer = []
        for resource in resources:
            self.asked.append((resource.name, resource.configs))
            topic = self.topics[resource.name]
            wanted = resource.configs  # None: every config
            answer.append(
                {
                    "error_code": topic.get("error_code", 0),
                    "error_message": None,
                    "resource_type": 2,
                    "resource_name": resource.name,
                    "config_entries": [
                        {
                            "config_names": name,
                            "config_value": value,
                            "read_only": False,
                            "config_source": 5,
                            "is_sensitive": False,
                        }
                        for name, value in topic.get("configs", {}).items()
                        if wanted is None or name in wanted
                    ],
                }
            )
        return [DescribeConfigsAnswer(answer)]


def test_every_topic_of_the_layout_has_configs_and_the_changelog_is_compacted() -> None:
    settings = Settings(app_id="shop")
    configs = topic_configs(settings)
    assert set(configs) == set(topic_layout(settings))
    assert configs["shop-accounts-changelog"] == {
        "cleanup.policy": "compact",
        "segment.bytes": "67108864",
    }
    day_ms = 24 * 3600 * 1000
    for topic, days in (
        (settings.input_topic, 7),
        (settings.output_topic, 14),
        (settings.dead_letter_topic, 30),
    ):
        assert configs[topic] == {"cleanup.policy": "delete", "retention.ms": str(days * day_ms)}


def test_the_layout_names_the_changelog_of_every_table_the_worker_keeps() -> None:
    settings = Settings(app_id="shop")
    changelogs = table_changelogs(create_app(settings))
    assert changelogs == ["shop-accounts-changelog"]
    assert set(changelogs) <= set(topic_layout(settings))


def test_a_changelog_with_the_delete_policy_is_refused_with_the_fix() -> None:
    admin = FakeAdmin(
        {
            "hs-accounts-changelog": {
                "configs": {"cleanup.policy": "delete", "retention.ms": "604800000"}
            }
        }
    )
    policies = asyncio.run(cleanup_policies(admin, ["hs-accounts-changelog"]))
    assert policies == {"hs-accounts-changelog": "delete"}
    assert [name for name, _ in admin.asked] == ["hs-accounts-changelog"]
    with pytest.raises(TopicConfigError) as refused:
        refuse_uncompacted(policies, "kafka:9092")
    message = str(refused.value)
    assert "hs-accounts-changelog has cleanup.policy=delete, not compact" in message
    assert (
        "kafka-configs.sh --bootstrap-server kafka:9092 --alter --entity-type topics "
        "--entity-name hs-accounts-changelog --add-config cleanup.policy=compact"
    ) in message


def test_compact_and_delete_together_is_refused_too() -> None:
    with pytest.raises(TopicConfigError, match="cleanup.policy=compact,delete"):
        refuse_uncompacted({"c": "compact,delete"}, "b:9092")


def test_a_compacted_or_missing_changelog_passes() -> None:
    admin = FakeAdmin({"c": {"configs": {"cleanup.policy": "compact"}}, "other": {}})
    policies = asyncio.run(cleanup_policies(admin, ["c", "not-yet-created"]))
    assert policies == {"c": "compact"}
    assert [name for name, _ in admin.asked] == ["c"]  # a missing one is not asked about
    assert refuse_uncompacted(policies, "b:9092") == []


def test_a_policy_the_broker_does_not_report_is_a_warning() -> None:
    admin = FakeAdmin({"c": {"configs": {}}})
    policies = asyncio.run(cleanup_policies(admin, ["c"]))
    [warning] = refuse_uncompacted(policies, "b:9092")
    assert "does not report the cleanup.policy of the changelog topic c" in warning


def test_a_changelog_deleted_since_it_was_listed_passes_and_an_acl_error_raises() -> None:
    gone = FakeAdmin({"c": {"error_code": 3}})
    assert asyncio.run(cleanup_policies(gone, ["c"])) == {}
    denied = FakeAdmin({"c": {"error_code": TopicAuthorizationFailedError.errno}})
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(cleanup_policies(denied, ["c"]))


async def _described(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        found: dict[str, dict[str, str]] = {}
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                found[resource["resource_name"]] = {
                    e["config_names"]: e["config_value"] for e in resource["config_entries"]
                }
        return found
    finally:
        await admin.close()


@pytest.mark.integration
def test_created_topics_carry_their_configs(kafka_bootstrap: str) -> None:
    settings = fresh_settings(kafka_bootstrap, "topics")
    asyncio.run(create_worker_topics(settings))
    described = asyncio.run(_described(kafka_bootstrap, list(topic_layout(settings))))
    for topic, configs in topic_configs(settings).items():
        for name, value in configs.items():
            assert described[topic].get(name) == value, (topic, described[topic])


@pytest.mark.integration
def test_produce_creates_the_changelog_compacted(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = fresh_settings(kafka_bootstrap, "produce-topics")
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "tick", "ts": 1700000000000}\n')
    done = _cli(
        "produce",
        str(events),
        "--bootstrap",
        kafka_bootstrap,
        "--app-id",
        settings.app_id,
        "--input-topic",
        settings.input_topic,
    )
    assert done.returncode == 0, done.stderr
    changelog = f"{settings.app_id}-accounts-changelog"
    described = asyncio.run(_described(kafka_bootstrap, [changelog]))
    assert described[changelog]["cleanup.policy"] == "compact"
    assert described[changelog]["segment.bytes"] == str(64 * 1024 * 1024)  # recovery reads it all


@pytest.mark.integration
def test_the_changelog_faust_creates_is_compacted_in_small_segments(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A worker started before anything made its topics: Faust creates the changelog, with
    the table's own configs (the segment size bounds what recovery reads)."""
    settings = fresh_settings(kafka_bootstrap, "faust-topics")
    asyncio.run(create_topics(kafka_bootstrap, {settings.input_topic: settings.partitions}))
    changelog = f"{settings.app_id}-accounts-changelog"
    with WorkerProcess(settings, tmp_path) as worker:
        worker.wait_for_log("Worker ready", timeout=90)
        described = asyncio.run(_described(kafka_bootstrap, [changelog]))
    assert described[changelog]["cleanup.policy"] == "compact"
    assert described[changelog]["segment.bytes"] == str(64 * 1024 * 1024)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "healthstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _worker_args(settings: Settings, data: Path) -> list[str]:
    return [
        "worker",
        "--bootstrap",
        settings.bootstrap_servers,
        "--app-id",
        settings.app_id,
        "--input-topic",
        settings.input_topic,
        "--output-topic",
        settings.output_topic,
        "--data-dir",
        str(data),
        "--broker-wait",
        "20",
    ]


@pytest.mark.integration
def test_a_worker_refuses_a_changelog_that_is_not_compacted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "uncompacted")
    changelog = f"{settings.app_id}-accounts-changelog"
    # what the project's topic creation did before: Kafka's default policy, stated
    asyncio.run(
        create_topics(kafka_bootstrap, {changelog: 4}, {changelog: {"cleanup.policy": "delete"}})
    )
    done = _cli(*_worker_args(settings, tmp_path / "data"), timeout=90)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"the changelog topic {changelog} has cleanup.policy=delete" in done.stderr
    assert "--add-config cleanup.policy=compact" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
