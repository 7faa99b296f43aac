"""The one broker fixture: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else embedded Tansu."""

from collections.abc import Iterator

import pytest

from stream.broker import broker_for_tests


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker_for_tests() as bootstrap:
        yield bootstrap
