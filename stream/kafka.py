"""Reaching a Kafka cluster: waiting for it to answer, and creating the project's topics."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """A broker could not be started or reached."""


async def cluster_id(bootstrap: str, timeout: float) -> str:
    """The cluster id from one metadata request; raises KafkaError, OSError or TimeoutError."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> str:
    """The cluster id, once the broker answers a metadata request; BrokerError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await cluster_id(bootstrap, min(5.0, max(deadline - time.monotonic(), 0.1)))
        except (KafkaError, OSError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"no Kafka broker answered at {bootstrap} in {timeout:g} s: {exc!r}"
                ) from exc
        await asyncio.sleep(0.2)


async def await_broker(
    bootstrap: str,
    report: Callable[[str], None],
    first_delay: float = 1.0,
    longest_delay: float = 30.0,
    give_up_after: float = 0.0,
) -> str:
    """Wait for the broker, saying so, with exponential backoff and jitter between tries.

    Returns the cluster id once it answers; with ``give_up_after`` > 0, raises BrokerError
    when it has not answered in that many seconds."""
    started = time.monotonic()
    delay = first_delay
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # one line per try from us, not one per refused connect
    try:
        return await _retry(bootstrap, report, started, delay, longest_delay, give_up_after)
    finally:
        quiet.setLevel(level)


async def _retry(
    bootstrap: str,
    report: Callable[[str], None],
    started: float,
    delay: float,
    longest_delay: float,
    give_up_after: float,
) -> str:
    while True:
        try:
            return await cluster_id(bootstrap, 5.0)
        except (KafkaError, OSError, TimeoutError) as exc:
            waited = time.monotonic() - started
            if give_up_after > 0 and waited >= give_up_after:
                raise BrokerError(
                    f"no Kafka broker answered at {bootstrap} in {give_up_after:g} s: {exc}"
                ) from exc
            pause = delay * random.uniform(0.8, 1.2)
            report(
                f"no Kafka broker answers at {bootstrap} ({type(exc).__name__}); "
                f"retrying in {pause:.1f} s"
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, longest_delay)


async def create_topics(
    bootstrap: str, topics: dict[str, int], configs: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    """Create the missing topics with these partition counts (replication factor 1) and
    topic configs (by topic name, e.g. ``{"cleanup.policy": "compact"}``).

    Topics that exist are left as they are; one with another partition count is logged.
    """
    if bad := {name: count for name, count in topics.items() if count < 1}:
        raise ValueError(f"a topic needs at least one partition: {bad}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # ask for all topics: naming one in a metadata request makes Tansu (and Kafka with
        # auto.create.topics.enable) create it with the broker's default partition count
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        for name, count in topics.items():
            if existing.get(name, count) != count:
                log.warning("topic %s has %d partitions, not %d", name, existing[name], count)
        configs = configs or {}
        missing = [
            NewTopic(n, count, 1, topic_configs=dict(configs.get(n, {})))
            for n, count in topics.items()
            if n not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for result in response.to_object()["topic_errors"]:
            error = for_code(result["error_code"]) if result["error_code"] else None
            if error is not None and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {result['topic']}: {result.get('error_message')}")
    finally:
        await admin.close()
