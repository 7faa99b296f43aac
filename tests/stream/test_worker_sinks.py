"""The worker's sinks through the real path: Kafka in, a SQLite history file and a signed
webhook out."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from scenarios import as_lines, silent_account_stream

from healthstream.dev.offsets import wait_for_commits
from healthstream.dev.process import WorkerProcess
from healthstream.produce import produce_records
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink, verify_signature
from stream.settings import Settings

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-tests"


class Receiver(BaseHTTPRequestHandler):
    """A CRM endpoint that keeps the outputs whose signature checks out."""

    received: list[dict] = []
    refused = 0

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify_signature(
            SECRET.encode(),
            body,
            self.headers.get("X-Healthstream-Timestamp", ""),
            self.headers.get("X-Healthstream-Signature", ""),
        )
        if ok:
            Receiver.received.append(json.loads(body))
        else:
            Receiver.refused += 1
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_worker_keeps_history_in_sqlite_and_posts_signed_outputs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run = uuid.uuid4().hex[:8]
    history = tmp_path / "history.db"
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"hs-sinks-{run}",
        input_topic=f"telemetry-{run}",
        output_topic=f"scores-{run}",
        dead_letter_topic=f"deadletter-{run}",
        history_url=f"sqlite:///{history}",
        webhook_url=f"http://127.0.0.1:{server.server_address[1]}/scores",
        webhook_secret=SECRET,
        flush_interval_s=0.5,
    )
    records = silent_account_stream(accounts=3, days=30)
    expected = MemorySink()
    replay(as_lines(records), HealthEngine(ScoringConfig(load_profile(), 5)), expected)
    want = {orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in expected.events}
    total = sum(4 if r["type"] == "tick" else 1 for r in records)
    asyncio.run(produce_records(settings, records))
    worker = WorkerProcess(settings, tmp_path)
    try:
        with worker:
            assert asyncio.run(wait_for_commits(settings, total, 120)), worker.log_tail()
        assert SECRET not in worker.log_path.read_text()
    finally:
        server.shutdown()
        server.server_close()
    # the commit waits for the sinks: by now both hold every output
    posted = {orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in Receiver.received}
    assert posted == want and Receiver.refused == 0
    with sqlite3.connect(history) as db:
        rows = db.execute("SELECT account_id, seq, kind FROM score_history").fetchall()
    assert sorted(rows) == sorted(
        (e["account_id"], e["seq"], e["kind"]) for _, e in expected.events
    )
