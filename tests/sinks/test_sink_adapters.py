"""The two sink contracts meet: sync sinks in the event loop, async sinks under replay."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from healthstream.dev.synthetic import Scenario, generate
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import (
    BlockingSink,
    JsonlFileSink,
    MemorySink,
    ScoreHistory,
    ThreadedSink,
    WebhookSink,
    verify_signature,
)

SECRET = b"adapter-test-key"


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), min_step=5))


def scenario_lines() -> list[bytes]:
    return [orjson.dumps(r) for r in generate(Scenario(accounts=5, days=40, seed=11))]


def output(account_id: str, seq: int) -> dict[str, Any]:
    return {
        "kind": "score_changed",
        "account_id": account_id,
        "seq": seq,
        "score": 40 + seq,
        "zone": "at_risk",
        "event_time": "2026-02-01T00:00:00.000+00:00",
        "config_version": "abc",
    }


class SlowFileSink(JsonlFileSink):
    """A JSONL file on a slow disk: every flush takes a while, on the calling thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.flush_threads: set[str] = set()

    def flush(self) -> None:
        time.sleep(0.25)
        self.flush_threads.add(threading.current_thread().name)
        super().flush()


def test_a_slow_sync_sink_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    slow = SlowFileSink(path)
    sink = ThreadedSink(slow)

    async def scenario() -> int:
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.01)
                beats += 1

        beating = asyncio.create_task(heartbeat())
        await sink.deliver_batch([output("acct-1", 1), output("acct-2", 1)])
        # the batch was flushed before deliver_batch returned
        assert len(path.read_bytes().splitlines()) == 2
        await sink.deliver_batch([output("acct-1", 2)])
        await sink.drain()
        beating.cancel()
        await sink.aclose()
        return beats

    beats = asyncio.run(scenario())
    assert beats >= 20  # about 0.5 s of flushing, and the loop kept turning meanwhile
    assert slow.flush_threads and threading.main_thread().name not in slow.flush_threads
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(e["account_id"], e["seq"]) for e in lines] == [
        ("acct-1", 1),
        ("acct-2", 1),
        ("acct-1", 2),
    ]
    assert slow.stream.closed


def test_the_worker_path_writes_score_history_one_transaction_per_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    expected = MemorySink()
    replay(scenario_lines(), engine(), expected)
    outputs = [event for _, event in expected.events]
    history = ScoreHistory(url, batch_size=10_000)
    sink = ThreadedSink(history)

    async def scenario() -> None:
        for start in range(0, len(outputs), 7):
            await sink.deliver_batch(outputs[start : start + 7])
            # each batch is committed when deliver_batch returns, visible to another reader
            reader = ScoreHistory(url)
            try:
                newest = outputs[min(start + 7, len(outputs)) - 1]
                latest = reader.latest(newest["account_id"])
                assert latest is not None and latest.payload == newest
            finally:
                reader.close()
        await sink.deliver_batch(outputs[:7])  # redelivered after a restart
        await sink.aclose()

    asyncio.run(scenario())
    assert history.written == len(outputs) and history.duplicates == 7


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A plain threaded HTTP server that accepts correctly signed POSTs only."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = verify_signature(
                SECRET,
                body,
                self.headers["X-Healthstream-Timestamp"],
                self.headers["X-Healthstream-Signature"],
            )
            if signed:
                received.append(orjson.loads(body))
            self.send_response(204 if signed else 401)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_replay_can_post_to_a_webhook(receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    lines = scenario_lines()
    expected = MemorySink()
    replay(lines, engine(), expected)
    gave_up: list[Any] = []
    webhook = WebhookSink(url, SECRET, lambda event, failure: gave_up.append(failure))
    replay(lines, engine(), BlockingSink(webhook, batch_size=16))
    assert gave_up == []
    assert webhook.delivered == len(expected.events) == len(received)
    key = [(e["account_id"], e["seq"], e["kind"]) for _, e in expected.events]
    assert sorted(key) == sorted((e["account_id"], e["seq"], e["kind"]) for e in received)


def test_blocking_sink_refuses_an_empty_batch_size() -> None:
    webhook = WebhookSink("http://127.0.0.1:1/hook", SECRET, lambda event, failure: None)
    with pytest.raises(ValueError, match="batch_size: must be at least 1, got 0"):
        BlockingSink(webhook, batch_size=0)
