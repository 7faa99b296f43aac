"""The worker's HTTP API, through real HTTP: any worker answers for any account."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from scenarios import as_lines

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.offsets import wait_for_commits
from stream.process import WorkerProcess
from stream.produce import produce_records
from stream.replay import replay
from stream.settings import Settings
from stream.synthetic import Scenario, generate

pytestmark = pytest.mark.integration


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_for_both(ports: list[int], workers: list[WorkerProcess]) -> None:
    """Until each worker's API answers and the group has handed out every partition."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if all(_get(p, "/accounts/?local=1")[0] == 200 for p in ports):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("\n".join(w.log_tail() for w in workers))


def test_any_worker_answers_for_any_account_and_lists_a_zone(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    ports = [_port(), _port()]
    base = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"hs-web-{run}",
        input_topic=f"telemetry-{run}",
        output_topic=f"scores-{run}",
        dead_letter_topic=f"deadletter-{run}",
        web_enabled=True,
        web_host="127.0.0.1",
        flush_interval_s=0.5,
    )
    records = list(generate(Scenario(accounts=24, days=50, seed=4)))
    emitted = MemorySink()
    book, _ = replay(as_lines(records), HealthEngine(ScoringConfig(load_profile(), 5)), emitted)
    last_change = {
        e["account_id"]: e["seq"] for _, e in emitted.events if e["kind"] == "score_changed"
    }
    asyncio.run(produce_records(base, records))
    workers = [
        WorkerProcess(Settings(**{**base.__dict__, "web_port": port}), tmp_path / f"w{port}")
        for port in ports
    ]
    try:
        for worker in workers:
            worker.start()
        total = sum(4 if r["type"] == "tick" else 1 for r in records)
        assert asyncio.run(wait_for_commits(base, total, 180)), workers[0].log_tail()
        _wait_for_both(ports, workers)
        local = [_get(p, "/accounts/?local=1")[1]["count"] for p in ports]
        assert all(local) and sum(local) == len(book.states)  # each holds a share
        for account in book.states:
            now = book.engine.describe(account, book.state(account))
            status, body = _get(ports[0], f"/accounts/{account}/")  # half are elsewhere
            assert status == 200, body
            # the score now, which may be a point or two from the last one emitted
            assert (body["score"], body["zone"], body["seq"]) == (
                now["score"],
                now["zone"],
                now["seq"],
            )
            assert body["recent_changes"][0]["seq"] == last_change[account]  # newest first
            assert "detectors" in body and "overrides" in body and "signals" in body
        for zone in ("critical", "at_risk", "healthy"):
            want = sorted(a for a in book.states if book.state(a).last_zone == zone)
            status, body = _get(ports[1], f"/accounts/?zone={zone}&limit=1000")
            assert status == 200 and sorted(a["account_id"] for a in body["accounts"]) == want
        assert _get(ports[0], "/accounts/nobody/")[0] == 404
        assert _get(ports[0], "/accounts/?zone=purple")[0] == 400
    finally:
        for worker in workers:
            worker.stop()
