"""Mistakes a user can make at the command line end in one clear line and an exit status,
never a traceback: subprocess runs of ``healthstream``."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kafka_io import fresh_settings, read_topic

from healthstream.cli import build_parser
from healthstream.dev.broker import EmbeddedBroker, _free_port
from healthstream.dev.demo import ScoreBoard, render_report
from healthstream.dev.synthetic import Scenario

ROOT = Path(__file__).resolve().parents[2]
HEALTHSTREAM = [sys.executable, "-W", "always::ResourceWarning", "-m", "healthstream.cli"]


def healthstream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTHSTREAM, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both[-3000:]
    assert "Unclosed" not in both, both[-3000:]


def test_version() -> None:
    from importlib.metadata import version

    done = healthstream("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"healthstream {version('healthstream')}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _shown(default: object) -> set[str]:
    """How a help text may write a default: as it is, 250,000, 30 for 30.0; '-' is stdout."""
    forms = {str(default)}
    if isinstance(default, int | float) and not isinstance(default, bool):
        forms |= {f"{default:,}", f"{default:g}"}
    if default == "-":
        forms.add("stdout")
    return forms


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_help_text_shows_the_defaults(command: str) -> None:
    parser = _subcommands()[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            continue
        text = formatter._expand_help(action)
        assert "default" in text and any(s in text for s in _shown(action.default)), (
            command,
            action.option_strings,
            text,
        )


def test_the_help_names_the_settings_defaults_of_options_that_default_to_none() -> None:
    done = healthstream("worker", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for shown in ("default localhost:9092", "default 4", "default: telemetry", "default 5"):
        assert shown in text


def test_produce_of_a_missing_file_is_one_line() -> None:
    done = healthstream("produce", "no-such-file.jsonl", "--bootstrap", "127.0.0.1:1")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "healthstream: [Errno 2] No such file or directory: 'no-such-file.jsonl'"
    )
    no_traceback(done)


def test_produce_names_a_bad_line_and_sends_nothing_before_waiting(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type": "tick", "ts": 1}\n\n{"type": "login", "account_id"\n[1]\n')
    started = time.monotonic()
    # no broker: the file is refused before produce so much as looks for one
    done = healthstream("produce", str(events), "--bootstrap", "127.0.0.1:1")
    assert time.monotonic() - started < 20
    assert done.returncode == 2
    assert done.stderr.startswith(f"healthstream: {events}: line 3, column ")
    assert "nothing was sent" in done.stderr
    no_traceback(done)

    events.write_bytes(b'{"type": "tick", "ts": 1}\n[1]\n')
    done = healthstream("produce", str(events), "--bootstrap", "127.0.0.1:1")
    assert done.returncode == 2
    assert f"{events}: line 2: a JSON array, not an object" in done.stderr


def test_produce_without_a_broker_gives_up_after_broker_wait(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type": "tick", "ts": 1700000000000}\n')
    started = time.monotonic()
    done = healthstream("produce", str(events), "--bootstrap", address, "--broker-wait", "1")
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert f"no Kafka broker answers at {address}" in done.stderr  # each try says so
    assert f"healthstream: no Kafka broker answered at {address} in 1 s" in done.stderr
    no_traceback(done)


@pytest.mark.integration
def test_produce_waits_for_a_broker_that_comes_up_late(tmp_path: Path) -> None:
    port = _free_port()
    settings = fresh_settings(f"127.0.0.1:{port}", "late")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type": "tick", "ts": 1700000000000}\n')
    log = tmp_path / "produce.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*HEALTHSTREAM, "produce", str(events), "--bootstrap", settings.bootstrap_servers]
            + ["--input-topic", settings.input_topic, "--broker-wait", "60"],
            stderr=err,
            cwd=ROOT,
        )
    broker = EmbeddedBroker(port=port)
    try:
        deadline = time.monotonic() + 30
        while "no Kafka broker answers at" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        broker.start()
        assert proc.wait(timeout=90) == 0, log.read_text()
        assert f"produce: 1 records to {settings.input_topic}" in log.read_text()
        records = asyncio.run(read_topic(broker.bootstrap, settings.input_topic, 4, 4, 30))
        assert len(records) == 4  # the tick, once to each partition
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop()


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.integration
def test_a_file_with_a_bad_line_leaves_the_broker_untouched(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, "badline")
    events = tmp_path / "events.jsonl"
    good = b'{"type": "login", "account_id": "a1", "ts": 1700000000000}\n'
    events.write_bytes(good * 50 + b"{oops\n" + good)
    done = healthstream(
        "produce",
        str(events),
        "--bootstrap",
        kafka_bootstrap,
        "--input-topic",
        settings.input_topic,
    )
    assert done.returncode == 2
    assert f"{events}: line 51, column 2: not JSON" in done.stderr
    no_traceback(done)
    # not a record sent, not even the topics created
    assert settings.input_topic not in asyncio.run(_topics(kafka_bootstrap))


@pytest.fixture(scope="module")
def large_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 130,000 records: several seconds of replay."""
    path = tmp_path_factory.mktemp("large") / "events.jsonl"
    done = healthstream("generate", "--accounts", "300", "--days", "90", "--out", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_ctrl_c_in_replay_stops_with_a_whole_partial_output(
    large_events: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.jsonl"
    proc = subprocess.Popen(
        [*HEALTHSTREAM, "replay", str(large_events), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        # outputs reach the file a buffer at a time: replay is under way once it has some
        while not out.exists() or out.stat().st_size == 0:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    found = re.search(r"replay interrupted after ([\d,]+) records", stderr)
    assert found, stderr
    records = int(found.group(1).replace(",", ""))
    total = sum(1 for line in large_events.read_bytes().splitlines() if line.strip())
    assert 0 < records < total
    data = out.read_bytes()
    assert data.endswith(b"\n")
    outputs = [orjson.loads(line) for line in data.splitlines()]
    assert outputs and all(isinstance(o, dict) and "kind" in o for o in outputs)
    summary = re.search(r"([\d,]+) outputs in", stderr)
    assert summary and int(summary.group(1).replace(",", "")) == len(outputs)


def test_replay_into_a_pipe_closed_early_ends_quietly(large_events: Path) -> None:
    with subprocess.Popen(
        [*HEALTHSTREAM, "replay", str(large_events)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert orjson.loads(proc.stdout.readline())["kind"]
        proc.stdout.close()  # as `| head -1` does
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_the_demo_table_keeps_its_columns_apart() -> None:
    scenario = Scenario(accounts=12, days=20, seed=3)
    board = ScoreBoard()
    zones = ("healthy", "onboarding", "at_risk", "critical")
    for i in range(12):
        board.add(
            {
                "kind": "score_changed",
                "account_id": f"acct-{i:05d}",
                "score": 10 * i,
                "previous_score": None,
                "zone": zones[i % 4],
                "as_of": "2024-01-01",
            }
        )
    report = render_report(board, scenario)
    assert "healthyonboarding" not in report
    table = report.split("Final zone by simulated behaviour:\n")[1].splitlines()
    header, rows = table[0], table[1:]
    assert header.split() == ["behaviour", "critical", "at_risk", "healthy", "onboarding"]
    # every count ends where its zone's name ends
    ends = [m.end() for m in re.finditer(r"\S+", header)][1:]
    total: Counter[str] = Counter()
    for row in rows:
        cells = list(re.finditer(r"\S+", row))
        assert [m.end() for m in cells[1:]] == ends, (header, row)
        for zone, cell in zip(header.split()[1:], cells[1:], strict=True):
            total[zone] += int(cell.group())
    assert total == Counter(zones * 3)


def test_worker_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from healthstream.cli import _settings

    for name in ("HEALTHSTREAM_WRONG_KEYS", "HEALTHSTREAM_WEB_BUILTIN_VIEWS"):
        monkeypatch.delenv(name, raising=False)
    plain = _settings(build_parser().parse_args(["worker"]))
    assert (plain.wrong_keys, plain.web_builtin_views) == ("forward", False)
    given = _settings(
        build_parser().parse_args(["worker", "--wrong-keys", "dead_letter", "--web-builtin-views"])
    )
    assert (given.wrong_keys, given.web_builtin_views) == ("dead_letter", True)
    refused = healthstream("worker", "--wrong-keys", "drop")
    assert refused.returncode == 2 and "invalid choice: 'drop'" in refused.stderr
