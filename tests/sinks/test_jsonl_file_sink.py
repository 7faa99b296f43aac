"""The JSONL file sink: appends across runs, flushes on demand and on close."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sinks import JsonlFileSink


def test_appends_across_opens_and_flush_makes_lines_readable(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    first = JsonlFileSink(path)
    first.deliver("acct-1", {"kind": "score_changed", "account_id": "acct-1", "seq": 1})
    first.close()

    second = JsonlFileSink(path, fsync=True)
    second.deliver("acct-2", {"kind": "alert", "account_id": "acct-2", "seq": 1})
    second.flush()
    # flushed (and fsynced): another reader sees both runs' lines before the close
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(e["account_id"], e["kind"]) for e in lines] == [
        ("acct-1", "score_changed"),
        ("acct-2", "alert"),
    ]
    second.deliver("acct-2", {"kind": "score_changed", "account_id": "acct-2", "seq": 2})
    second.close()
    assert second.stream.closed and second.delivered == 2
    assert len(path.read_bytes().splitlines()) == 3
    assert repr(second) == f"JsonlFileSink({str(path)!r}, fsync=True)"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "scores.jsonl"
    with pytest.raises(OSError, match="missing/scores.jsonl: cannot open the JSONL file"):
        JsonlFileSink(path)
