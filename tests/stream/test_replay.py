"""``healthstream replay``: the core over a file, including time moving for silent accounts."""

import subprocess
import sys

import orjson
from scenarios import SILENT, as_lines, silent_account_stream

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks import MemorySink
from stream.replay import replay


def engine() -> HealthEngine:
    return HealthEngine(ScoringConfig(load_profile(), min_step=5))


def test_silent_account_score_falls_with_no_events_of_its_own() -> None:
    records = silent_account_stream()
    last_own = max(r["ts"] for r in records if r.get("account_id") == SILENT)
    sink = MemorySink()
    replay(as_lines(records), engine(), sink)
    silent = [e for k, e in sink.events if k == SILENT and e["kind"] == "score_changed"]
    after = [e for e in silent if e["as_of"] > _day(last_own)]
    assert after, "ticks alone should have moved the silent account's score"
    scores = [e["score"] for e in after]
    assert scores == sorted(scores, reverse=True)  # only down
    assert after[-1]["zone"] == "critical"
    assert after[0]["previous_score"] > after[-1]["score"]
    usage = {m["signal"]: m for e in after for m in e["signals"]}["usage_trend"]
    assert usage["score"] == 0 and usage["evidence"]["last_14d"] == 0
    busy = [e for k, e in sink.events if k == "acct-1" and e["kind"] == "score_changed"]
    assert busy[-1]["zone"] != "critical"


def _day(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).date().isoformat()


def test_replay_skips_bad_lines_and_counts_them() -> None:
    lines = as_lines(silent_account_stream(accounts=2, days=5))
    lines[3:3] = [b"{oops", b'{"type":"warp","ts":1}', b"[]"]
    sink = MemorySink()
    _, stats = replay(lines, engine(), sink)
    assert dict(stats.rejected) == {"not_json": 1, "unknown_type": 1, "not_object": 1}
    assert sink.events


def test_replay_command_writes_jsonl(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(as_lines(silent_account_stream(accounts=3, days=30))) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    outputs = [orjson.loads(line) for line in done.stdout.splitlines()]
    kinds = {o["kind"] for o in outputs}
    assert "score_changed" in kinds
    assert kinds <= {"score_changed", "override_applied", "override_cleared", "alert"}
    assert b" outputs in " in done.stderr
    sink = MemorySink()
    replay(path.read_bytes().splitlines(), engine(), sink)
    assert [e for _, e in sink.events] == outputs
