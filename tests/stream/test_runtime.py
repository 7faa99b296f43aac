"""The collector's thresholds rest on a property of the book: no reference cycles."""

import gc

import orjson

from healthstream.dev.synthetic import Scenario, generate
from healthstream.tools.replay import replay
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from sinks.base import MemorySink
from stream.runtime import GC_THRESHOLDS, tune_gc


def test_scoring_leaves_no_cycles_for_the_collector_to_find() -> None:
    lines = [orjson.dumps(r) for r in generate(Scenario(accounts=60, days=45, seed=3))]
    last_event = next(line for line in reversed(lines) if b'"type":"tick"' not in line)
    lines += [b"not json", last_event]  # a rejected record and a duplicate raise, are caught
    engine = HealthEngine(ScoringConfig(load_profile()))
    gc.collect()
    gc.disable()
    try:
        book, stats = replay(lines, engine, MemorySink())
        assert stats.duplicates == 1 and stats.rejected["not_json"] == 1
        assert len(book.states) == 60
        # everything a replay left behind is freed by reference counting alone
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_tune_gc_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
