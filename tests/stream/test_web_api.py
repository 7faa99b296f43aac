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

from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.dev.synthetic import Scenario, generate
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.settings import Settings

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


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _raw_status(port: int, request: bytes) -> tuple[bytes, bytes]:
    """The status line and body of a raw HTTP request."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_limits_are_checked_faust_pages_are_off_and_long_lines_are_refused_quietly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    port = _port()
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"hs-webx-{run}",
        input_topic=f"telemetry-{run}",
        output_topic=f"scores-{run}",
        dead_letter_topic=f"deadletter-{run}",
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=port,
        flush_interval_s=0.5,
    )
    records = list(generate(Scenario(accounts=5, days=10, seed=2)))
    asyncio.run(produce_records(settings, records))
    worker = WorkerProcess(settings, tmp_path)
    with worker:
        total = sum(4 if r["type"] == "tick" else 1 for r in records)
        assert asyncio.run(wait_for_commits(settings, total, 120)), worker.log_tail()
        _wait_for_both([port], [worker])
        for limit in ("-1", "-49", "0", "1001", "ten"):
            status, body = _get(port, f"/accounts/?limit={limit}")
            assert status == 400 and "1 to 1000" in body["error"], (limit, body)
        assert len(_get(port, "/accounts/?limit=1")[1]["accounts"]) == 1
        assert len(_get(port, "/accounts/?limit=1000")[1]["accounts"]) == 5
        assert _get(port, "/") == (200, {"status": "OK"})
        # Faust's own pages (worker URLs, partitions, tables) are not served
        for path in ("/router/", "/router/assignment/", "/table/accounts/", "/stats/"):
            assert _status(port, path) == 404, path
        # request lines and header lines over 8 KB: refused with their own status, quietly
        for _ in range(3):
            line, body = _raw_status(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert line.split()[1] == b"414" and b"request line" in body, line
        header = b"GET /accounts/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
        assert _raw_status(port, header)[0].split()[1] == b"431"
        assert _status(port, "/accounts/?limit=1") == 200  # and the server still answers
    log = worker.log_path.read_text()
    assert "Traceback" not in log and "Error handling request" not in log, worker.log_tail()
