"""The ``healthstream`` command: worker, replay, generate, produce, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeAlias, TypeVar

import orjson

from healthstream.produce import BadLine
from healthstream.tools.backtesting import BacktestError
from scoring.profile import ProfileError
from sinks import HistoryError, JsonlSink
from stream.kafka import BrokerError
from stream.runtime import tune_gc
from stream.settings import Settings, SettingsError, load_settings
from stream.topics import TopicConfigError
from telemetry.codec import BadEvent
from telemetry.mapping import InputMapping, MappingError
from telemetry.ordering import RUN_SIZE, Record, TimeOrder

T = TypeVar("T")
#: the exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 128 + signal.SIGINT


def _settings(args: argparse.Namespace) -> Settings:
    cli = {
        "bootstrap_servers": getattr(args, "bootstrap", None),
        "profile_path": getattr(args, "profile", None),
        "min_step": getattr(args, "min_step", None),
        "partitions": getattr(args, "partitions", None),
        "app_id": getattr(args, "app_id", None),
        "input_topic": getattr(args, "input_topic", None),
        "output_topic": getattr(args, "output_topic", None),
        "tick_interval_s": getattr(args, "tick_interval", None),
        "web_port": getattr(args, "web_port", None),
        "web_host": getattr(args, "web_host", None),
        "metrics_port": getattr(args, "metrics_port", None),
        "web_enabled": True if getattr(args, "web", False) else None,
        "data_dir": getattr(args, "data_dir", None),
        "store": getattr(args, "store", None),
        "max_cached_accounts": getattr(args, "max_cached_accounts", None),
        "max_live_accounts": getattr(args, "max_live_accounts", None),
        "wrong_keys": getattr(args, "wrong_keys", None),
        "web_builtin_views": True if getattr(args, "web_builtin_views", False) else None,
    }
    return load_settings(getattr(args, "config", None), cli)


def _lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
    else:
        with open(path, "rb") as f:
            yield from f


def input_mapping(args: argparse.Namespace) -> InputMapping | None:
    """The mapping ``--map SPEC`` gives, or that of ``--source TOPIC`` in ``--config``'s
    inputs; None for the event contract as it is."""
    spec, source = getattr(args, "map", None), getattr(args, "source", None)
    if spec and source:
        raise MappingError("--map and --source: give one (the mapping, or the configured topic)")
    if spec:
        return InputMapping.from_spec(spec)
    if not source:
        return None
    inputs = {i.topic: i.mapping for i in _settings(args).inputs}
    if source not in inputs:
        where = getattr(args, "config", None) or "the settings"
        raise MappingError(
            f"--source {source}: no such input in {where} (inputs: {', '.join(inputs) or 'none'})"
        )
    return inputs[source]


def events_by_time(
    args: argparse.Namespace, mapping: InputMapping | None, order: TimeOrder
) -> Iterator[Record]:
    """The records of ``--events`` (or the replayed file), decoded and in time order."""
    from telemetry.mapping import read_events
    from telemetry.ordering import events_in_time_order

    records = read_events(args.events, mapping, args.format)
    return events_in_time_order(records, order, run_size=args.sort_run)


def say_how_ordered(label: str, order: TimeOrder) -> None:
    if order.resorted:
        print(
            f"{label}: sorted {order.timed:,} records by time: the file was not in time order",
            file=sys.stderr,
        )


def nothing_mapped(path: str, mapping: InputMapping | None, order: TimeOrder) -> str | None:
    """When every record of a file was rejected, what to do about it; else None."""
    if order.timed or not order.untimed:
        return None
    if mapping is None:
        hint = (
            "records in another shape than the event contract need --map FIELD=SOURCE,... "
            "(e.g. --map account_id=customer,ts=date,type=const:value_action; "
            "see docs/inputs.md), and --format csv for CSV not named .csv"
        )
    else:
        hint = (
            f"check the mapping: 'healthstream map-check {path}' with the same --map or "
            "--source shows why each row is rejected"
        )
    return f"no record of {path} mapped to an event: all {order.untimed:,} were rejected; {hint}"


class Progress:
    """A one-line progress report on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None, stream: IO[str] = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.enabled = stream.isatty()
        self.started = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done:,}/{self.total:,} {rate:,.0f}/s")
        else:
            self.stream.write(f"\r{self.label} {done:,} {rate:,.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


class StopOnInterrupt:
    """While active, Ctrl-C ends an iteration before its next record instead of raising
    KeyboardInterrupt wherever the program is, so that every output written so far is
    whole. A second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def records(self, records: Iterable[T]) -> Iterator[T]:
        for record in records:
            if self.interrupted:
                return
            yield record


def cmd_replay(args: argparse.Namespace) -> int:
    """Run the scoring core over a file of events with no broker (JSONL in the contract, or
    JSONL or CSV through --map or --source), in time order; outputs go to stdout as JSONL."""
    import itertools

    from healthstream.tools.replay import replay_events
    from stream.settings import build_engine

    settings = _settings(args)
    mapping = input_mapping(args)
    order = TimeOrder()
    progress = Progress("replay")
    started = time.perf_counter()
    records = events_by_time(args, mapping, order)
    # the first record read: a file that cannot be read at all (a CSV without --map) stops
    # the run before the output is opened
    first = list(itertools.islice(records, 1))
    out = (
        JsonlSink(sys.stdout.buffer)
        if args.out == "-"
        else JsonlSink(open(args.out, "wb"), close_stream=True)
    )
    sink: Any = out
    if args.history:
        from sinks import FanOutSink, ScoreHistory

        sink = FanOutSink(out, ScoreHistory(args.history))

    def report(lineno: int, exc: BadEvent) -> None:
        if args.verbose:
            where = "" if str(exc).startswith("row ") else f"{lineno}: "
            print(f"{args.events}: {where}{exc.reason}: {exc}", file=sys.stderr)

    try:
        with StopOnInterrupt() as stop:
            book, stats = replay_events(
                stop.records(itertools.chain(first, records)),
                build_engine(settings),
                sink,
                report,
                progress.update,
            )
    finally:
        progress.close()
    say_how_ordered("replay", order)
    elapsed = time.perf_counter() - started
    summary = (
        f"replay: {stats.events:,} events, {stats.ticks:,} ticks, {len(book.states):,} accounts, "
        f"{out.delivered:,} outputs in {elapsed:.2f} s "
        f"({stats.records / max(elapsed, 1e-9):,.0f} records/s)"
    )
    if stats.duplicates:
        summary += f"; {stats.duplicates:,} duplicates skipped"
    if stats.rejected:
        summary += "; rejected: " + ", ".join(f"{r}={n}" for r, n in sorted(stats.rejected.items()))
    print(summary, file=sys.stderr)
    if stop.interrupted:
        where = "stdout" if args.out == "-" else args.out
        print(
            f"healthstream: replay interrupted after {stats.records:,} records; {where} holds "
            "their outputs",
            file=sys.stderr,
        )
        return INTERRUPTED
    problem = nothing_mapped(args.events, mapping, order)
    if problem:
        print(f"healthstream: {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Replay a JSONL file and explain one account: score, signals, detectors, overrides, action."""
    from healthstream.tools.explain import explain_account, explain_events, render
    from stream.settings import build_engine
    from telemetry.mapping import file_format
    from telemetry.ordering import contract_line_ts, in_time_order

    settings = _settings(args)
    engine = build_engine(settings)
    order = TimeOrder()
    mapping = input_mapping(args)
    if mapping is None and file_format(args.events, args.format) == "jsonl":
        lines = in_time_order(_lines(args.events), contract_line_ts, order, run_size=args.sort_run)
        description, history = explain_account(lines, args.account, engine)
    else:
        records = (event for _, event in events_by_time(args, mapping, order))
        description, history = explain_events(records, args.account, engine)
    say_how_ordered("explain", order)
    if description is None and not order.timed and order.untimed:
        print(
            f"healthstream: no line of {args.events} is an event of the contract: all "
            f"{order.untimed:,} were rejected (explain reads JSONL in the event contract; "
            f"'healthstream replay {args.events} -v' says why each is rejected)",
            file=sys.stderr,
        )
        return 1
    if description is None:
        print(
            f"healthstream: no events for account {args.account!r} in {args.events}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(description, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render(description, history, engine.profile.name, args.last))
    return 0


def cmd_map_check(args: argparse.Namespace) -> int:
    """Show what a mapping makes of sample source records: each one's contract event, or
    why it is skipped or rejected. Exits 1 when any record is rejected."""
    from collections import Counter

    from telemetry.mapping import Skipped, read_mapped

    mapping = input_mapping(args)
    if mapping is None:
        settings = _settings(args)
        if len(settings.inputs) != 1:
            raise MappingError(
                "map-check needs a mapping: --map SPEC, or --config FILE with one input "
                f"(or --source TOPIC to pick one of {len(settings.inputs)})"
            )
        mapping = settings.inputs[0].mapping
    mapped: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    out = sys.stdout
    for row, outcome in read_mapped(args.sample, mapping, args.format):
        if isinstance(outcome, BadEvent):
            rejected[outcome.reason] += 1
            out.write(f"rejected ({outcome.reason}) {outcome}\n")
        elif isinstance(outcome, Skipped):
            skipped[outcome.reason] += 1
            out.write(f"skipped ({outcome.reason}) {outcome}\n")
        else:
            mapped[outcome.type.value] += 1
            event = {
                "event_id": outcome.event_id,
                "account_id": outcome.account_id,
                "type": outcome.type.value,
                "ts": outcome.ts_ms,
                "value": outcome.value,
                "user_id": outcome.user_id,
                "attrs": outcome.attrs,
            }
            shown = {k: v for k, v in event.items() if v not in (None, {})}
            out.write(f"row {row}: {orjson.dumps(shown).decode()}\n")
        if (
            args.limit
            and sum(mapped.values()) + sum(skipped.values()) + sum(rejected.values()) >= args.limit
        ):
            break

    def tally(counts: Counter[str]) -> str:
        total = sum(counts.values())
        detail = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        return f"{total}" + (f" ({detail})" if detail else "")

    print(
        f"map-check: {tally(mapped)} mapped, {tally(skipped)} skipped, {tally(rejected)} rejected",
        file=sys.stderr,
    )
    return 1 if rejected else 0


def _churn_labels(args: argparse.Namespace) -> dict[str, Any] | None:
    from healthstream.tools.backtesting import BacktestError, load_labels

    if bool(args.labels) == bool(args.churn_if_inactive):
        raise BacktestError("give churn as --labels FILE or as --churn-if-inactive (one of them)")
    return load_labels(args.labels) if args.labels else None


def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay history to a date with no broker, score every account known then, and report
    how the scores ranked the accounts that churned in the horizon after it."""
    from healthstream.tools.backtest_report import render_backtest
    from healthstream.tools.backtesting import backtest, parse_day, write_report
    from stream.settings import build_engine

    labels = _churn_labels(args)
    at = parse_day(args.at, "--at")
    mapping = input_mapping(args)
    engine = build_engine(_settings(args))
    order = TimeOrder()
    progress = Progress("backtest")
    try:
        records = events_by_time(args, mapping, order)
        report = backtest(records, engine, at, args.horizon, labels, progress.update)
    except BacktestError:
        problem = nothing_mapped(args.events, mapping, order)
        if problem is None:
            raise
        print(f"healthstream: {problem}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    say_how_ordered("backtest", order)
    out = write_report(report, args.out, render_backtest)
    baselines = report["baselines"]
    print(
        f"backtest at {report['at']}: {report['accounts']:,} accounts, {report['churned']:,} "
        f"churned within {report['horizon_days']} days; AUC {report['auc']} "
        f"(recency {baselines['recency']['auc']}, frequency {baselines['frequency']['auc']}); "
        f"report in {out}/report.html",
        file=sys.stderr,
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the profile's signal and category weights to churn at --train-at, write the
    fitted profile, and compare it with the original and the baselines at --test-at."""
    from healthstream.tools.backtest_report import render_calibration
    from healthstream.tools.backtesting import parse_day, write_report
    from healthstream.tools.calibration import calibrate

    labels = _churn_labels(args)
    settings = _settings(args)
    mapping = input_mapping(args)
    out_profile = Path(args.out_profile or Path(args.out) / "calibrated.toml")
    # calibrate reads the file once per replay; the first read says how it was ordered
    orders: list[TimeOrder] = []

    def read() -> Iterator[Record]:
        orders.append(TimeOrder())
        return events_by_time(args, mapping, orders[-1])

    progress = Progress("calibrate")
    try:
        report = calibrate(
            read,
            settings.profile_path,
            parse_day(args.train_at, "--train-at"),
            parse_day(args.test_at, "--test-at"),
            args.horizon,
            labels,
            out_profile,
            settings.min_step,
            args.l2,
            progress.update,
        )
    except BacktestError:
        problem = nothing_mapped(args.events, mapping, orders[0]) if orders else None
        if problem is None:
            raise
        print(f"healthstream: {problem}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    if orders:
        say_how_ordered("calibrate", orders[0])
    out = write_report(report, args.out, render_calibration)
    test = report["test"]
    baselines = test["calibrated"]["baselines"]
    print(
        f"calibrate: AUC at {report['test_at']}: {report['profile']} {test['original']['auc']}, "
        f"calibrated {test['calibrated']['auc']}, recency {baselines['recency']['auc']}, "
        f"frequency {baselines['frequency']['auc']}; profile {out_profile}; "
        f"report in {out}/report.html",
        file=sys.stderr,
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a synthetic scenario as JSONL."""
    from healthstream.dev.synthetic import Scenario, write_jsonl

    scenario = Scenario(
        accounts=args.accounts,
        days=args.days,
        seed=args.seed,
        intensity=args.intensity,
        churn_in_span=args.churn_in_span,
    )
    if args.labels:
        from healthstream.dev.synthetic import churn_labels

        with open(args.labels, "w") as f:
            f.write("account_id,churned_at\n")
            for account, churned in churn_labels(scenario).items():
                f.write(f"{account},{churned.isoformat() if churned else ''}\n")
    if args.out == "-":
        n = write_jsonl(scenario, sys.stdout.buffer)
    else:
        n = write_jsonl(scenario, Path(args.out))
    print(f"generate: {n:,} records", file=sys.stderr)
    return 0


def _say(line: str) -> None:
    print(f"healthstream: {line}", file=sys.stderr, flush=True)


def cmd_produce(args: argparse.Namespace) -> int:
    """Produce a JSONL file to the input topic (ticks go to every partition). Every line is
    checked first: a file with a line that is not a JSON object is refused whole."""
    from aiokafka.errors import KafkaError

    from healthstream.produce import check_lines, parse_lines, produce_records
    from stream.kafka import await_broker, client_options

    settings = _settings(args)
    # a file is read once to check it and once to send it; standard input is kept
    kept = list(_lines("-")) if args.events == "-" else None

    def lines() -> Iterable[bytes]:
        return _lines(args.events) if kept is None else kept

    check_lines(lines(), args.events)

    async def produce() -> int:
        await await_broker(
            settings.bootstrap_servers,
            _say,
            give_up_after=args.broker_wait,
            options=client_options(settings),
        )
        return await produce_records(settings, parse_lines(lines()))

    try:
        n = asyncio.run(produce())
    except KafkaError as exc:
        raise BrokerError(f"producing to {settings.bootstrap_servers}: {exc!r}") from exc
    print(f"produce: {n:,} records to {settings.input_topic}", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker: consume the input topic, keep account tables, emit score changes."""
    from stream.app import create_app, run_worker, startup_line
    from stream.kafka import await_broker, client_options
    from stream.topics import check_changelogs, table_changelogs

    settings = _settings(args)
    app = create_app(settings)
    waiting = await_broker(
        settings.bootstrap_servers,
        _say,
        give_up_after=args.broker_wait,
        options=client_options(settings),
    )
    asyncio.run(waiting)
    # refused here, before Faust starts: a refusal from inside it comes with a traceback
    asyncio.run(check_changelogs(settings, table_changelogs(app), _say))
    assert app.healthstream_engine is not None  # built with the app
    _say(startup_line(settings, table_changelogs(app), app.healthstream_engine))
    run_worker(app, args.loglevel)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded broker + worker + a synthetic scenario streamed in about a minute."""
    from healthstream.dev.demo import run_demo

    return run_demo(accounts=args.accounts, days=args.days, seconds=args.seconds, seed=args.seed)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a read-only web page over a score history: the book by zone, each account's
    score over time with its evidence, and the alerts; the same data as JSON under /api/."""
    import os

    from healthstream.dashboard.book import ZoneBands
    from healthstream.dashboard.server import serve
    from scoring.profile import load_profile

    url = args.history or os.environ.get("HEALTHSTREAM_HISTORY_URL")
    if not url:
        raise HistoryError("serve: give --history URL (or set HEALTHSTREAM_HISTORY_URL)")
    profile = load_profile(args.profile or os.environ.get("HEALTHSTREAM_PROFILE") or None)
    bands = ZoneBands(
        (profile.at_risk_from, profile.healthy_from),
        {s.name: (s.weighting.at_risk_from, s.weighting.healthy_from) for s in profile.segments},
    )
    token = os.environ.get("HEALTHSTREAM_UI_TOKEN") or None
    serve(url, args.host, args.port, token, bands)
    return 0


def _add_common(p: argparse.ArgumentParser, kafka: bool = True) -> None:
    # None: the settings decide (file, environment, then these defaults)
    d = Settings()
    p.add_argument(
        "--config", help="TOML settings file, a [healthstream] table (env HEALTHSTREAM_CONFIG)"
    )
    p.add_argument("--profile", help="scoring profile TOML (default: the packaged default)")
    p.add_argument(
        "--min-step",
        type=int,
        help=f"emit when the score moves at least this much (default {d.min_step})",
    )
    if kafka:
        p.add_argument(
            "--bootstrap",
            help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS; "
            f"default {d.bootstrap_servers})",
        )
        p.add_argument(
            "--partitions", type=int, help=f"input topic partitions (default {d.partitions})"
        )
        p.add_argument("--input-topic", help=f"telemetry topic (default: {d.input_topic})")
        p.add_argument("--output-topic", help=f"score-change topic (default: {d.output_topic})")
        p.add_argument("--app-id", help=f"consumer group and table prefix (default: {d.app_id})")


def _add_broker_wait(p: argparse.ArgumentParser, default: float, meaning: str) -> None:
    p.add_argument(
        "--broker-wait",
        type=float,
        default=default,
        metavar="SECONDS",
        help=f"seconds to wait for an unreachable broker before giving up (default {meaning}; "
        "0: forever; retries back off from 1 s to 30 s)",
    )


def _add_mapping(p: argparse.ArgumentParser) -> None:
    """The options that say how a file's records map to the event contract."""
    p.add_argument(
        "--map",
        metavar="SPEC",
        help="map records to the contract: FIELD=SOURCE pairs, e.g. "
        "ts=date,account_id=customer,type=const:value_action,value=cds,amount=usd "
        "(see docs/inputs.md)",
    )
    p.add_argument(
        "--source",
        metavar="TOPIC",
        help="use the mapping of this input topic in --config's [[inputs]]",
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        help="the file's format (default: by its suffix; .csv is CSV)",
    )


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _add_ordering(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sort-run",
        type=_at_least_one,
        default=RUN_SIZE,
        metavar="RECORDS",
        help="records are replayed in time order: up to this many are sorted in memory, a "
        f"larger file in sorted runs spilled to temporary files (default {RUN_SIZE:,})",
    )


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to an option's help unless the help already names its default
    or there is none to show (a flag, or None: the settings decide, and the help says how)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    try:
        return version("healthstream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: its help shows the defaults, like the top level's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


#: what ``add_subparsers`` returns: each command adds its parser to it
_Commands: TypeAlias = "argparse._SubParsersAction[_CommandParser]"


def _add_worker(sub: _Commands) -> None:
    """The `worker` command's arguments."""
    p = sub.add_parser("worker", help=cmd_worker.__doc__, description=cmd_worker.__doc__)
    _add_common(p)
    p.add_argument(
        "--tick-interval",
        type=float,
        help=f"seconds between wall-clock ticks (0: off; default {Settings().tick_interval_s:g})",
    )
    p.add_argument("--web", action="store_true", help="serve the worker's HTTP API")
    p.add_argument("--web-port", type=int, help=f"HTTP port (default {Settings().web_port})")
    p.add_argument(
        "--web-host",
        help="address the HTTP API listens on and other workers reach it at "
        f"(default {Settings().web_host}: this machine only; 0.0.0.0: every interface)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help=f"port of the Prometheus metrics, GET /metrics (default {Settings().metrics_port}; "
        "0: not served)",
    )
    p.add_argument(
        "--web-builtin-views",
        action="store_true",
        help="also serve Faust's own pages (worker URLs, partitions, table contents); "
        "off by default: they expose the cluster's layout",
    )
    p.add_argument(
        "--wrong-keys",
        choices=("forward", "dead_letter"),
        help="a record whose Kafka key is not its account_id: forward it to the account's "
        "partition, or dead-letter it as wrong_key (default: forward)",
    )
    p.add_argument("--data-dir", help=f"local state directory (default {Settings().data_dir})")
    p.add_argument("--store", help="table store: memory:// (default) or rocksdb://")
    p.add_argument(
        "--max-cached-accounts",
        type=int,
        help="with rocksdb://, live states kept in memory "
        f"(default {Settings().max_cached_accounts:,})",
    )
    p.add_argument(
        "--max-live-accounts",
        type=int,
        help="with memory://, accounts kept as live objects after a flush; the others are "
        "kept as snapshot bytes and decoded on their next event (default 0: all live)",
    )
    p.add_argument("--loglevel", default="warning", help="log level (default: warning)")
    _add_broker_wait(p, 0.0, "forever")
    p.set_defaults(func=cmd_worker)


def _add_replay(sub: _Commands) -> None:
    """The `replay` command's arguments."""
    p = sub.add_parser("replay", help=cmd_replay.__doc__, description=cmd_replay.__doc__)
    p.add_argument("events", help="JSONL or CSV file of events ('-' for stdin)")
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    p.add_argument("-v", "--verbose", action="store_true", help="report each rejected line")
    p.add_argument(
        "--history",
        help="also keep every output in a score history: sqlite:///FILE or postgresql://…",
    )
    _add_common(p, kafka=False)
    _add_mapping(p)
    _add_ordering(p)
    p.set_defaults(func=cmd_replay)


def _add_map_check(sub: _Commands) -> None:
    """The `map-check` command's arguments."""
    p = sub.add_parser("map-check", help=cmd_map_check.__doc__, description=cmd_map_check.__doc__)
    p.add_argument("sample", help="JSONL or CSV file of source records ('-' for stdin)")
    p.add_argument("--config", help="settings file (TOML) with the [[inputs]] to check")
    p.add_argument("--limit", type=int, default=0, help="stop after this many records (0: none)")
    _add_mapping(p)
    p.set_defaults(func=cmd_map_check)


def _add_generate(sub: _Commands) -> None:
    """The `generate` command's arguments."""
    p = sub.add_parser("generate", help=cmd_generate.__doc__, description=cmd_generate.__doc__)
    p.add_argument("--accounts", type=int, default=300, help="accounts to simulate")
    p.add_argument("--days", type=int, default=120, help="days of telemetry")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed, the same file")
    p.add_argument("--intensity", type=float, default=1.0, help="scale of daily activity")
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    p.add_argument("--labels", help="also write each account's churn date to this CSV")
    p.add_argument(
        "--churn-in-span",
        action="store_true",
        help="declining churners churn inside the span (a history to backtest on)",
    )
    p.set_defaults(func=cmd_generate)


def _add_history_tools(sub: _Commands) -> None:
    """The `backtest` and `calibrate` commands' arguments: both replay a history to a date."""
    for name, func in (("backtest", cmd_backtest), ("calibrate", cmd_calibrate)):
        p = sub.add_parser(name, help=func.__doc__, description=func.__doc__)
        p.add_argument("--events", required=True, help="JSONL or CSV file of events, in any order")
        if name == "backtest":
            p.add_argument("--at", required=True, help="the date to score at (YYYY-MM-DD)")
        else:
            p.add_argument("--train-at", required=True, help="the date to fit at (YYYY-MM-DD)")
            p.add_argument(
                "--test-at",
                required=True,
                help="the date to test at; at least a horizon after --train-at",
            )
            p.add_argument(
                "--out-profile",
                help="where to write the fitted profile (default: OUT/calibrated.toml)",
            )
            p.add_argument(
                "--l2",
                type=float,
                default=None,
                help="fix the L2 penalty instead of choosing it by cross-validation on the "
                "training date",
            )
        p.add_argument(
            "--horizon", type=int, required=True, help="days after the date that count as churn"
        )
        p.add_argument("--out", required=True, help="directory for report.json and report.html")
        p.add_argument("--labels", help="CSV of account_id,churned_at (empty: did not churn)")
        p.add_argument(
            "--churn-if-inactive",
            action="store_true",
            help="an account churned when it has no event in the horizon",
        )
        p.add_argument("--profile", help="profile file or packaged profile name")
        p.add_argument(
            "--min-step",
            type=int,
            help=f"emit when the score moves at least this much (default {Settings().min_step})",
        )
        p.add_argument("--config", help="settings file (TOML), for --source mappings")
        _add_mapping(p)
        _add_ordering(p)
        p.set_defaults(func=func)


def _add_explain(sub: _Commands) -> None:
    """The `explain` command's arguments."""
    p = sub.add_parser("explain", help=cmd_explain.__doc__, description=cmd_explain.__doc__)
    p.add_argument("account", help="the account id")
    p.add_argument(
        "--events", required=True, help="JSONL or CSV file of events ('-' for stdin), any order"
    )
    p.add_argument("--profile", help="profile file or packaged profile name")
    p.add_argument(
        "--min-step",
        type=int,
        help=f"emit when the score moves at least this much (default {Settings().min_step})",
    )
    p.add_argument("--last", type=int, default=10, help="how many recent outputs to list")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--config", help="settings file (TOML)")
    _add_mapping(p)
    _add_ordering(p)
    p.set_defaults(func=cmd_explain)


def _add_produce(sub: _Commands) -> None:
    """The `produce` command's arguments."""
    p = sub.add_parser("produce", help=cmd_produce.__doc__, description=cmd_produce.__doc__)
    p.add_argument("events", help="JSONL file ('-' for stdin)")
    _add_common(p)
    _add_broker_wait(p, 30.0, "30")
    p.set_defaults(func=cmd_produce)


def _add_demo(sub: _Commands) -> None:
    """The `demo` command's arguments."""
    p = sub.add_parser("demo", help=cmd_demo.__doc__, description=cmd_demo.__doc__)
    p.add_argument("--accounts", type=int, default=300, help="accounts to simulate")
    p.add_argument("--days", type=int, default=120, help="days of telemetry")
    p.add_argument("--seconds", type=float, default=45.0, help="wall time to stream over")
    p.add_argument("--seed", type=int, default=7, help="random seed of the scenario")
    p.set_defaults(func=cmd_demo)


def _add_serve(sub: _Commands) -> None:
    """The `serve` command's arguments."""
    p = sub.add_parser("serve", help=cmd_serve.__doc__, description=cmd_serve.__doc__)
    p.add_argument(
        "--history",
        help="the score history: sqlite:///FILE or postgresql://… (env HEALTHSTREAM_HISTORY_URL)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    p.add_argument(
        "--profile",
        help="the workers' profile, whose zone bands the charts draw "
        "(env HEALTHSTREAM_PROFILE; default: the packaged default)",
    )
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="healthstream",
        description="Streaming customer-health scores from product telemetry in Kafka.",
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument("--version", action="version", version=f"healthstream {_version()}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=_CommandParser,
    )
    _add_worker(sub)
    _add_replay(sub)
    _add_map_check(sub)
    _add_generate(sub)
    _add_history_tools(sub)
    _add_explain(sub)
    _add_produce(sub)
    _add_demo(sub)
    _add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()  # worker, replay, backtest and calibrate hold a large book of accounts
    try:
        result: Any = args.func(args)
    except KeyboardInterrupt:
        print("healthstream: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``| head``): say nothing more on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (
        SettingsError,
        ProfileError,
        MappingError,
        BacktestError,
        OSError,
        BrokerError,
        HistoryError,
        BadLine,
        TopicConfigError,
    ) as exc:
        print(f"healthstream: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
