"""Shared fixtures: one Kafka broker per session, started only when a test asks for it."""

import uuid
from collections.abc import Callable, Iterator

import pytest
from brokers import broker_for_tests


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, else a testcontainers Kafka, else the embedded Tansu broker."""
    with broker_for_tests() as bootstrap:
        yield bootstrap


@pytest.fixture
def unique_topic() -> Callable[[str], str]:
    """``unique_topic("scores")`` gives a name no other test or earlier run on the broker uses."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:12]}"
