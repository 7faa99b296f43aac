"""Broker trouble through the real Kafka protocol: a worker that starts before its broker,
and a broker that goes away mid-run and comes back holding what it held."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest
from kafka_io import fresh_settings, read_until_quiet, records_in_kafka
from scenarios import as_lines, silent_account_stream

from healthstream.dev.broker import EmbeddedBroker, _free_port
from healthstream.dev.offsets import committed_input_records, wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _want(records: list[dict]) -> set[bytes]:
    sink = MemorySink()
    replay(as_lines(records), HealthEngine(ScoringConfig(load_profile(), 5)), sink)
    return {orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in sink.events}


def _got(settings: Settings) -> set[bytes]:
    records = asyncio.run(read_until_quiet(settings.bootstrap_servers, settings.output_topic, 4))
    return {orjson.dumps(orjson.loads(r.value), option=orjson.OPT_SORT_KEYS) for r in records}


def test_a_worker_started_before_its_broker_waits_then_consumes(tmp_path: Path) -> None:
    port = _free_port()
    settings = fresh_settings(f"127.0.0.1:{port}", "trouble")
    records = silent_account_stream(accounts=4, days=30)
    worker = WorkerProcess(settings, tmp_path).start()
    broker = EmbeddedBroker(port=port)
    try:
        deadline = time.monotonic() + 30
        while "no Kafka broker answers at" not in worker.log_tail(200):
            assert time.monotonic() < deadline, worker.log_tail()
            assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.2)
        assert "retrying in" in worker.log_tail(200)
        broker.start()
        asyncio.run(produce_records(settings, records))
        assert asyncio.run(wait_for_commits(settings, records_in_kafka(records), 120)), (
            worker.log_tail()
        )
        time.sleep(1.0)
        assert _got(settings) == _want(records)
    finally:
        worker.stop()
        broker.stop()


class Outage:
    """A TCP proxy in front of the broker: ``cut()`` drops every connection and refuses new
    ones, as a restarting broker does; ``restore()`` accepts again. The broker keeps its log."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port, self.target_port = listen_port, target_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _restore(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.listen_port)

    async def _cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._restore(), self.loop).result(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self.loop).result(10)

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_broker_outage_mid_run_loses_none_of_the_events_it_holds(tmp_path: Path) -> None:
    front, back = _free_port(), _free_port()
    outage = Outage(front, back)
    outage.restore()
    broker = EmbeddedBroker(port=back, advertised=f"127.0.0.1:{front}").start()
    settings = fresh_settings(f"127.0.0.1:{front}", "trouble")
    records = list(generate(Scenario(accounts=200, days=40, seed=3)))
    total = records_in_kafka(records)
    worker = WorkerProcess(settings, tmp_path)
    try:
        asyncio.run(produce_records(settings, records))
        worker.start()
        deadline = time.monotonic() + 120
        while (done := asyncio.run(committed_input_records(settings))) < total * 0.3:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)
        assert done < total  # the outage comes mid-run, with work left to do
        outage.cut()
        time.sleep(6.0)  # the broker is unreachable; the worker must ride it out
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        outage.restore()
        assert asyncio.run(wait_for_commits(settings, total, 180)), worker.log_tail()
        time.sleep(1.0)
        assert _got(settings) == _want(records)
    finally:
        worker.stop()
        broker.stop()
        outage.close()
