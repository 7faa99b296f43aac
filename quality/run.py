"""``make quality``: how well each packaged profile tells steady accounts from changed ones.

Generates the synthetic population once, replays it through the scoring core for every
profile asked for (one process per profile, up to ``--jobs`` at a time), measures the
outputs and writes ``results.json`` and ``report.html``. It prints figures, not a verdict.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from healthstream.tools.replay import replay_events
from quality.frontier import FrontierSettings, against_profile, frontier
from quality.generator import Dataset, GeneratorSettings, generate
from quality.measure import (
    ACCOUNT_MONTH_DAYS,
    CRITICAL_DAYS,
    DETECTION_DAYS,
    DIP_WATCH_DAYS,
    FLIP_MS,
    WARMUP_DAYS,
    TraceSink,
    profile_figures,
)
from quality.report import render_html, summary_text
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import PROFILES, load_profile
from stream.runtime import tune_gc

HERE = Path(__file__).parent
QUICK = GeneratorSettings(volumes=(15, 200), steady_per_volume=3, changed_per_volume=2)
QUICK_REFERENCE = FrontierSettings(accounts=40)
EPILOG = f"""\
kinds of account (the change comes after {GeneratorSettings().history_days} days of ordinary life):
  steady                    nothing changes: its alerts, onsets and flips are false alarms
  drop_30, drop_10          value actions fall to 30% / 10% and stay there
  dip_10d                   value actions at 20% for 10 days, then back in full
  silence                   no event of any kind from the change on
  slow_fade                 value actions fade to 20% over 90 days
  multi_decline_responsive  value actions, logins, integration messages at 35%
  multi_decline_silent      the same, and the champion is never seen again

Figures per profile, overall and by volume: for steady accounts alerts, red and yellow
finding onsets, exits from healthy and flips within 24 h per 100 account-months (from day
100); for the changes the share detected within 21 days, the median delay, the share still
flagged 8 and 16 weeks on and the median score then. Beside them, for drop_30, what a
reference test told each account's usual rate (Page's CUSUM) detects within 21 days when
it starts flagging steady accounts no more often than the profile does, volume by volume.
The default run takes a few minutes.
"""

#: the population a worker process scores, handed over when the process is forked
_dataset: Dataset | None = None


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _volumes(text: str) -> tuple[int, ...]:
    try:
        volumes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    if not volumes or min(volumes) < 1:
        raise argparse.ArgumentTypeError("volumes must be positive")
    return volumes


def _profiles(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PROFILES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown profile {unknown[0] if unknown else text!r} (known: {', '.join(PROFILES)})"
        )
    return names


def parser() -> argparse.ArgumentParser:
    default = GeneratorSettings()
    p = argparse.ArgumentParser(
        prog="python -m quality.run",
        description=(
            "Score a synthetic population with a known change per account through the real "
            "core, once per profile, and measure false alarms on steady accounts, detection "
            "of drops, silences, fades and multi-signal declines, and how long they stay "
            "flagged. Writes results.json and report.html; prints the tables."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seed", type=int, default=default.seed, help="seed of every draw (%(default)s)"
    )
    p.add_argument(
        "--steady",
        type=int,
        metavar="N",
        help=f"steady accounts per volume (default {default.steady_per_volume})",
    )
    p.add_argument(
        "--replicates",
        type=int,
        metavar="N",
        help=f"accounts per change kind and volume (default {default.changed_per_volume})",
    )
    p.add_argument(
        "--volumes",
        type=_volumes,
        metavar="V,V,...",
        help="value actions per week, one population each "
        f"(default {','.join(map(str, default.volumes))})",
    )
    p.add_argument(
        "--profiles",
        type=_profiles,
        default=PROFILES,
        metavar="NAME,...",
        help=f"packaged profiles to score (default all: {','.join(PROFILES)})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=HERE,
        metavar="DIR",
        help="where results.json and report.html go (default quality/)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=min(len(PROFILES), os.cpu_count() or 1),
        metavar="N",
        help="profiles scored at once, one process each (default: the CPU count, at most 4)",
    )
    p.add_argument(
        "--reference-accounts",
        type=int,
        metavar="N",
        help="steady and drop_30 accounts per volume for the known-rate reference test "
        f"(default {FrontierSettings().accounts}; 0 leaves it out)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a small population, for tests: volumes {','.join(map(str, QUICK.volumes))}, "
        f"{QUICK.steady_per_volume} steady and {QUICK.changed_per_volume} per change kind",
    )
    return p


def settings_from(args: argparse.Namespace) -> GeneratorSettings:
    settings = replace(QUICK if args.quick else GeneratorSettings(), seed=args.seed)
    if args.steady is not None:
        settings = replace(settings, steady_per_volume=args.steady)
    if args.replicates is not None:
        settings = replace(settings, changed_per_volume=args.replicates)
    if args.volumes is not None:
        settings = replace(settings, volumes=args.volumes)
    return settings


class Progress:
    """Reports a profile's replay on standard error about every tenth of the records."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.started = time.monotonic()
        self.next_tenth = 1

    def __call__(self, records: int) -> None:
        if records * 10 >= self.next_tenth * self.total:
            self.next_tenth = records * 10 // self.total + 1
            elapsed = time.monotonic() - self.started
            share = 100 * records // self.total
            say(f"  {self.name}: {share}% ({records:,} records, {elapsed:.0f} s)")


def score_profile(name: str, dataset: Dataset | None = None) -> dict[str, Any]:
    """Replay the population through the core with profile ``name`` and measure the outputs."""
    dataset = _dataset if dataset is None else dataset
    assert dataset is not None, "no population to score"
    started = time.monotonic()
    engine = HealthEngine(ScoringConfig(load_profile(name)))
    sink = TraceSink()
    records = enumerate(dataset.records, 1)
    _, stats = replay_events(
        records, engine, sink, on_progress=Progress(name, len(dataset.records))
    )
    figures = profile_figures(dataset, sink.traces)
    seconds = time.monotonic() - started
    say(f"  {name}: done in {seconds:.0f} s, {sink.outputs:,} outputs")
    return {
        "config_version": engine.version,
        "seconds": round(seconds, 1),
        "outputs": sink.outputs,
        "rejected": dict(stats.rejected),
        "duplicates": stats.duplicates,
        **figures,
    }


def _adopt(dataset: Dataset) -> None:
    global _dataset
    _dataset = dataset
    tune_gc()


def score_profiles(dataset: Dataset, names: Sequence[str], jobs: int) -> dict[str, Any]:
    """Each profile's figures, in the order asked; forked workers share the records."""
    if jobs <= 1 or len(names) == 1:
        return {name: score_profile(name, dataset) for name in names}
    gc.freeze()  # the records stay shared pages in the forked workers
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        min(jobs, len(names)), mp_context=context, initializer=_adopt, initargs=(dataset,)
    ) as pool:
        done = dict(zip(names, pool.map(score_profile, names), strict=True))
    gc.unfreeze()
    return done


def reference_from(args: argparse.Namespace) -> FrontierSettings | None:
    chosen = QUICK_REFERENCE if args.quick else FrontierSettings()
    if args.reference_accounts is not None:
        chosen = replace(chosen, accounts=args.reference_accounts)
    return chosen if chosen.accounts > 0 else None


def results_of(
    dataset: Dataset, profiles: dict[str, Any], known_rate: dict[str, Any] | None = None
) -> dict[str, Any]:
    settings = dataset.settings
    if known_rate is not None:
        for profile in profiles.values():
            profile["against_known_rate"] = against_profile(known_rate, profile)
    return {
        "seed": settings.seed,
        "days": settings.days,
        "volumes": list(settings.volumes),
        "replicates": {
            "steady": settings.steady_per_volume,
            "changed": settings.changed_per_volume,
        },
        "records": len(dataset.records),
        "accounts": len(dataset.accounts),
        "generator": settings.as_dict(),
        "measure": {
            "warmup_days": WARMUP_DAYS,
            "detection_days": DETECTION_DAYS,
            "critical_days": CRITICAL_DAYS,
            "dip_watch_days": DIP_WATCH_DAYS,
            "flip_hours": FLIP_MS // 3_600_000,
            "account_month_days": ACCOUNT_MONTH_DAYS,
        },
        "known_rate": known_rate,
        "profiles": profiles,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    tune_gc()
    started = time.monotonic()
    say(
        f"generating {settings.days} days of {len(settings.volumes)} volumes "
        f"(seed {settings.seed}) ..."
    )
    dataset = generate(settings)
    say(
        f"  {len(dataset.accounts):,} accounts, {len(dataset.records):,} records "
        f"in {time.monotonic() - started:.0f} s"
    )
    jobs = max(1, args.jobs)
    say(f"scoring with {', '.join(args.profiles)} ({min(jobs, len(args.profiles))} at a time) ...")
    profiles = score_profiles(dataset, args.profiles, jobs)
    reference = reference_from(args)
    known_rate = None
    if reference is not None:
        say(f"the known-rate reference test on {reference.accounts} accounts per volume ...")
        known_rate = frontier(settings, reference)
    results = results_of(dataset, profiles, known_rate)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    (args.out / "report.html").write_text(render_html(results))
    print(summary_text(results))
    say(
        f"wrote {args.out / 'results.json'} and {args.out / 'report.html'} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
