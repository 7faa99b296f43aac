"""Every client through a real TLS listener: the broker wait, produce and the worker.

The embedded broker speaks plaintext only, so a TLS-terminating proxy on loopback sits in
front of it and the broker advertises the proxy's port: every connection a client makes,
bootstrap and partition leaders alike, goes through TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from kafka_io import fresh_settings, records_in_kafka
from scenarios import as_lines, silent_account_stream

from healthstream.dev.broker import EmbeddedBroker, _free_port
from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream import kafka
from stream.kafka import BrokerError, await_broker
from stream.settings import Settings

pytestmark = pytest.mark.integration


class TlsFront:
    """A proxy on ``listen_port`` in front of the broker's ``target_port``: plaintext until
    ``require_tls()``, then TLS only (a plaintext client's bytes end its connection)."""

    def __init__(self, listen_port: int, target_port: int, context: ssl.SSLContext) -> None:
        self.listen_port, self.target_port, self.context = listen_port, target_port, context
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _serve(self, context: ssl.SSLContext | None) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.server = await asyncio.start_server(
            self._client, "127.0.0.1", self.listen_port, ssl=context
        )

    def serve_plaintext(self) -> None:
        asyncio.run_coroutine_threadsafe(self._serve(None), self.loop).result(10)

    def require_tls(self) -> None:
        asyncio.run_coroutine_threadsafe(self._serve(self.context), self.loop).result(10)

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate to test with")
    folder = tmp_path_factory.mktemp("tls-front")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_broker(certificate: tuple[Path, Path]) -> Iterator[tuple[str, str]]:
    """(the TLS bootstrap address, the broker's cluster id)."""
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    front, back = _free_port(), _free_port()
    proxy = TlsFront(front, back, server)
    proxy.serve_plaintext()  # the broker checks itself through its advertised port as it starts
    broker = EmbeddedBroker(port=back, advertised=f"127.0.0.1:{front}").start()
    proxy.require_tls()
    try:
        yield f"127.0.0.1:{front}", broker.cluster_id
    finally:
        broker.stop()
        proxy.close()


def tls_settings(bootstrap: str, cert: Path) -> Settings:
    return fresh_settings(
        bootstrap, "tls", kafka_security_protocol="SSL", kafka_ssl_cafile=str(cert)
    )


def test_the_broker_wait_reaches_the_cluster_through_tls_and_only_through_it(
    tls_broker: tuple[str, str], certificate: tuple[Path, Path]
) -> None:
    bootstrap, cluster = tls_broker
    settings = tls_settings(bootstrap, certificate[0])
    said: list[str] = []
    found = asyncio.run(
        await_broker(
            bootstrap, said.append, give_up_after=20, options=kafka.client_options(settings)
        )
    )
    assert found == cluster and said == []
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        asyncio.run(await_broker(bootstrap, said.append, first_delay=0.2, give_up_after=2))
    assert said and "retrying" in said[0]


def read_all(settings: Settings, topic: str, expect: int, timeout: float = 60) -> list[bytes]:
    async def read() -> list[bytes]:
        consumer = kafka.consumer(settings, enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            values: list[bytes] = []
            deadline = time.monotonic() + timeout
            while len(values) < expect and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    values += [r.value for r in records]
            return values
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_produce_and_a_worker_run_whole_through_tls(
    tls_broker: tuple[str, str], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    bootstrap, _ = tls_broker
    settings = tls_settings(bootstrap, certificate[0])
    records = silent_account_stream(accounts=3, days=20)
    total = records_in_kafka(records)
    asyncio.run(produce_records(settings, records))
    assert len(read_all(settings, settings.input_topic, total)) == total

    sink = MemorySink()
    replay(as_lines(records), HealthEngine(ScoringConfig(load_profile(), settings.min_step)), sink)
    want = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in sink.events)
    with WorkerProcess(settings, tmp_path) as worker:
        assert asyncio.run(wait_for_commits(settings, total, 120)), worker.log_tail()
        got = read_all(settings, settings.output_topic, len(want))
    assert sorted(orjson.dumps(orjson.loads(v), option=orjson.OPT_SORT_KEYS) for v in got) == want
