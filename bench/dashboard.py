"""``make bench-dashboard``: how fast ``healthstream serve`` answers over a large book.

For each book size (default 300 and 100,000 accounts) it writes a SQLite score history
through ``ScoreHistory``, as a worker or ``replay --history`` does: a synthetic scenario
replayed once, its outputs copied under new account ids up to the size. Then it starts
``healthstream serve`` over it and loads pages through real HTTP: the book's first page
20 times, 20 account pages, and the book sorted, filtered, searched and paged deep.
It prints the figures; the targets are the first page at p95 ≤ 300 ms and an account
page ≤ 100 ms, with 100,000 accounts.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from healthstream.dev.synthetic import Scenario, generate
from healthstream.tools.replay import replay
from scoring.outputs import OutputEvent
from sinks import MemorySink, ScoreHistory
from stream.settings import Settings, build_engine

LOADS = 20
TARGETS_MS = {"book": 300.0, "account": 100.0}


def say(text: str) -> None:
    print(text, flush=True)


def outputs_of(accounts: int, days: int) -> list[OutputEvent]:
    """The outputs of a synthetic scenario replayed through the default profile."""
    import orjson

    sink = MemorySink()
    lines = [orjson.dumps(r) for r in generate(Scenario(accounts=accounts, days=days))]
    replay(lines, build_engine(Settings()), sink)
    return [event for _, event in sink.events]


def copies_of(originals: int, accounts: int) -> int:
    return -(-accounts // originals)


def write_history(path: Path, outputs: list[OutputEvent], accounts: int) -> tuple[float, int]:
    """A history of ``accounts`` accounts: the outputs' accounts, copied under new ids
    (``acct-00042-0007``) in the outputs' order (time order, as a worker writes them);
    returns the seconds it took and the rows written."""
    originals = sorted({e["account_id"] for e in outputs})
    copies = copies_of(len(originals), accounts)
    keep = dict.fromkeys(originals, copies)
    # one copy fewer of the last accounts, so that the book holds exactly ``accounts``
    for a in originals[len(originals) - (copies * len(originals) - accounts) :]:
        keep[a] = copies - 1
    history = ScoreHistory(f"sqlite:///{path}", batch_size=20_000)
    started = time.perf_counter()
    rows = 0
    try:
        for event in outputs:
            account = event["account_id"]
            for c in range(keep[account]):
                history.deliver(account, {**event, "account_id": f"{account}-{c:04d}"})
            rows += keep[account]
    finally:
        history.close()
    return time.perf_counter() - started, rows


class Server:
    """``healthstream serve`` in a child process, on a free port."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "healthstream.cli", "serve", "--history", url, "--port", "0"],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"healthstream serve did not start: {line}")
        self.host, self.port = found.group(1), int(found.group(2))

    def get_ms(self, path: str) -> float:
        """One load, on a new connection as a browser's first visit makes it."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return elapsed

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def measure(server: Server, account_ids: list[str]) -> dict[str, list[float]]:
    server.get_ms("/")  # the connection pool and the page cache, as any server that has run
    figures = {
        "book": [server.get_ms("/") for _ in range(LOADS)],
        "account": [server.get_ms("/accounts/" + quote(a, safe="")) for a in account_ids],
    }
    for name, path in (
        ("book sorted by 30-day change", "/?sort=change_30d"),
        ("book, critical only", "/?zone=critical"),
        ("book, search", "/?q=00042"),
        ("book, page 1,000", "/?page=1000"),
        ("alerts", "/alerts"),
        ("JSON /api/book", "/api/book"),
    ):
        figures[name] = [server.get_ms(path) for _ in range(5)]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        default="300,100000",
        help="book sizes to measure, comma-separated (default 300,100000)",
    )
    parser.add_argument("--seed-accounts", type=int, default=300, help="accounts replayed")
    parser.add_argument("--days", type=int, default=120, help="days of the scenario")
    parser.add_argument(
        "--dir", help="keep the histories here and reuse them on the next run (default: a temp dir)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="healthstream-bench-dashboard-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"healthstream bench-dashboard: {args.seed_accounts} accounts x {args.days} days replayed")
    outputs: list[OutputEvent] | None = None
    results: dict[int, dict[str, list[float]]] = {}
    for size in sizes:
        path = workdir / f"history-{size}.db"
        if not path.exists():
            if outputs is None:
                outputs = outputs_of(args.seed_accounts, args.days)
                say(f"  {len(outputs):,} outputs from the scenario")
            partial = path.with_suffix(".part")
            partial.unlink(missing_ok=True)
            seconds, rows = write_history(partial, outputs, size)
            partial.rename(path)
            say(
                f"  {size:,} accounts: {rows:,} rows written in {seconds:.1f} s "
                f"({rows / seconds:,.0f} rows/s through ScoreHistory), "
                f"{path.stat().st_size / 1e6:,.0f} MB"
            )
        server = Server(f"sqlite:///{path}")
        try:
            copies = copies_of(args.seed_accounts, size)
            step = max(1, args.seed_accounts // LOADS)
            ids = [f"acct-{i:05d}-{i % copies:04d}" for i in range(0, args.seed_accounts, step)][
                :LOADS
            ]
            results[size] = measure(server, ids)
        finally:
            server.stop()
    say("")
    say(f"  {'page (ms)':<30}" + "".join(f"{f'{s:,} accounts':>24}" for s in sizes))
    names = list(results[sizes[0]])
    for name in names:
        cells = []
        for size in sizes:
            v = results[size][name]
            cells.append(f"p50 {statistics.median(v):6.1f}  p95 {p95(v):6.1f}")
        say(f"  {name:<30}" + "".join(f"{c:>24}" for c in cells))
    largest = results[max(sizes)]
    say("")
    for name, target in TARGETS_MS.items():
        got = p95(largest[name])
        verdict = "within" if got <= target else "OVER"
        say(
            f"  {name} page at {max(sizes):,} accounts: p95 {got:.1f} ms of {len(largest[name])}"
            f" loads, {verdict} the target of {target:.0f} ms"
        )
    if not args.dir:
        for file in workdir.iterdir():
            file.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
