"""Skipping repeats is exact: the same outputs and states with the skip off and on.

A repeat (``AccountState.is_repeat``) only adds to today's count of a series already
counted today; when it moves no signal, ``HealthEngine.on_event`` skips the evaluation.
Here every packaged profile replays two populations (the synthetic scenario at a high
intensity, and the quality suite's accounts at a low and a high volume) with the skip
off and on; outputs must match byte for byte and states snapshot for snapshot, and the
skip must have saved evaluations (else the comparison would prove nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

import scoring
from healthstream.dev.synthetic import Scenario, generate
from quality.generator import GeneratorSettings
from quality.generator import generate as generate_population
from scoring.book import AccountBook, Output
from scoring.engine import HealthEngine, ScoringConfig
from scoring.feed import feed
from scoring.profile import load_profile
from telemetry.codec import decode_event
from windows.account import ACTIVE_USER_DAYS, AccountState
from windows.snapshot import encode_state
from windows.telemetry import EventType, TelemetryEvent

PROFILES = sorted((Path(scoring.__file__).parent / "profiles").glob("*.toml"))


def _synthetic() -> list[TelemetryEvent]:
    records = generate(Scenario(accounts=12, days=50, seed=5, intensity=6))
    return [decode_event(orjson.dumps(r)) for r in records]


def _population() -> list[TelemetryEvent]:
    settings = GeneratorSettings(
        seed=3,
        volumes=(5, 200),
        steady_per_volume=2,
        changed_per_volume=1,
        history_days=56,
        follow_days=28,
    )
    return generate_population(settings).records


STREAMS = {"synthetic": _synthetic(), "population": _population()}


class CountingEngine(HealthEngine):
    """The engine, counting its evaluations."""

    evaluations = 0

    def evaluate(self, *args: Any, **kwargs: Any) -> list[Output]:
        self.evaluations += 1
        return super().evaluate(*args, **kwargs)


def _run(
    events: Iterable[TelemetryEvent], profile: Path, skip: bool
) -> tuple[list[bytes], dict[str, bytes], int]:
    """Outputs (as sorted-key JSON), final snapshots and evaluations of one replay."""
    engine = CountingEngine(ScoringConfig(load_profile(profile), skip_repeats=skip))
    book = AccountBook(engine)
    outputs: list[bytes] = []
    for event in events:
        fed = feed(book, event)
        outputs.extend(orjson.dumps(out, option=orjson.OPT_SORT_KEYS) for _, out in fed.outputs)
    states = {a: encode_state(book.state(a)) for a in sorted(book.states)}
    return outputs, states, engine.evaluations


@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_skipping_repeats_changes_no_output_and_no_state(profile: Path, stream: str) -> None:
    events = STREAMS[stream]
    want_outputs, want_states, evaluated = _run(events, profile, skip=False)
    got_outputs, got_states, evaluated_with_skip = _run(events, profile, skip=True)
    assert got_outputs == want_outputs
    assert got_states == want_states
    assert want_outputs, "a population that emits nothing proves nothing"
    assert evaluated_with_skip < 0.8 * evaluated, (evaluated_with_skip, evaluated)


def test_a_repeat_is_an_event_that_only_adds_to_a_count_of_today() -> None:
    day = 20_454 * 86_400_000
    state = AccountState()

    def event(etype: EventType, ts: int, user: str | None = "u1", **attrs: Any) -> TelemetryEvent:
        return TelemetryEvent("e", "a", etype, ts, 1.0, user, attrs)

    first = event(EventType.FEATURE_USED, day + 1000, feature="reports")
    assert not state.is_repeat(first)
    state.apply(first)
    assert state.is_repeat(event(EventType.FEATURE_USED, day + 2000, feature="reports"))
    assert not state.is_repeat(event(EventType.FEATURE_USED, day + 2000, feature="exports"))
    assert not state.is_repeat(event(EventType.FEATURE_USED, day + 2000, "u2", feature="reports"))
    assert state.is_repeat(event(EventType.FEATURE_USED, day + 2000, None, feature="reports"))
    assert not state.is_repeat(event(EventType.LOGIN, day + 2000))  # no login counted today
    tomorrow = day + 86_400_000
    assert not state.is_repeat(event(EventType.FEATURE_USED, tomorrow, feature="reports"))
    priced = event(EventType.FEATURE_USED, day + 2000, feature="reports", amount=5)
    assert not state.is_repeat(priced)
    state.apply(event(EventType.API_CALLS, day + 3000))
    assert state.is_repeat(event(EventType.API_CALLS, day + 4000))
    assert not state.is_repeat(event(EventType.API_CALLS, day + 4000, errors=2))
    assert not state.is_repeat(event(EventType.MEETING_ATTENDED, day + 4000))


def test_a_users_first_event_of_a_day_is_a_repeat_while_they_count_as_active() -> None:
    ms_per_day = 86_400_000
    day = 20_454 * ms_per_day
    state = AccountState()

    def login(ts: int, user: str) -> TelemetryEvent:
        return TelemetryEvent("e", "a", EventType.LOGIN, ts, 1.0, user, {})

    state.apply(login(day + 1000, "u1"))
    later = day + (ACTIVE_USER_DAYS - 1) * ms_per_day  # u1 still counts among active users
    state.apply(login(later + 1000, "u2"))
    assert state.is_repeat(login(later + 2000, "u1"))
    state.champion_user = "u1"  # the champion's last day is read on its own
    assert not state.is_repeat(login(later + 2000, "u1"))
    state.champion_user = None
    gone = day + ACTIVE_USER_DAYS * ms_per_day  # u1 no longer counts: their return adds one
    state.apply(login(gone + 1000, "u2"))
    assert not state.is_repeat(login(gone + 2000, "u1"))
    assert not state.is_repeat(login(gone + 2000, "u3"))  # never seen
