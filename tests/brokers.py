"""The broker the integration tests run against, and whether a Docker engine could give one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

from healthstream.dev.broker import EmbeddedBroker
from stream.kafka import wait_for_broker


def _unix_socket_answers(path: str, timeout: float) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            return True
    except OSError:
        return False


def docker_engine_available(timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers a ping where testcontainers would look; never raises."""
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.core.docker_client import get_docker_host

        kwargs = docker.utils.kwargs_from_env()
        if host := get_docker_host():
            kwargs.update(base_url=host, use_ssh_client=host.startswith("ssh://"))
        base_url = str(kwargs.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET)
        # docker's own client leaks its socket when a unix socket refuses: try it ourselves first
        _, unix, path = base_url.partition("unix://")
        if unix and not _unix_socket_answers(path, timeout):
            return False
        # a fixed API version: "auto" would ask the engine already in the constructor
        client = docker.APIClient(
            version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=timeout, **kwargs
        )
    except Exception:
        return False
    try:
        # the unversioned ping: a versioned one fails on engines that do not speak that version
        return bool(client.get(f"{client.base_url}/_ping", timeout=timeout).ok)
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def broker_for_tests(timeout: float = 60.0) -> Iterator[str]:
    """Yield a bootstrap address that answers: $KAFKA_BOOTSTRAP_SERVERS if set, else a
    testcontainers Kafka when a Docker engine answers, else the embedded Tansu broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if given:
        asyncio.run(wait_for_broker(given, timeout))
        yield given
    elif docker_engine_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            bootstrap = kafka.get_bootstrap_server()
            asyncio.run(wait_for_broker(bootstrap, timeout))
            yield bootstrap
    else:
        with EmbeddedBroker(startup_timeout=timeout) as broker:
            yield broker.bootstrap
