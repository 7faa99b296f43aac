"""The engine's output helpers: times as ``datetime`` writes them, weight shares as computed."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from scoring.model import NO_SCORE, Scorecard
from scoring.outputs import iso_time
from scoring.profile import load_profile
from windows.days import iso_day

# from 1970 to 2200, in milliseconds
TIMES = st.integers(min_value=0, max_value=7_258_118_400_000)


@given(TIMES)
def test_event_times_read_as_datetime_isoformat_writes_them(ts_ms: int) -> None:
    expected = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    assert iso_time(ts_ms) == expected


def test_event_times_at_the_edges_of_a_day() -> None:
    day = 20_454 * 86_400_000  # 2026-01-01
    assert iso_time(day) == "2026-01-01T00:00:00.000+00:00"
    assert iso_time(day - 1) == "2025-12-31T23:59:59.999+00:00"
    assert iso_time(day + 86_399_999) == "2026-01-01T23:59:59.999+00:00"
    assert iso_day(20_454) == "2026-01-01"


@given(st.lists(st.booleans(), min_size=1, max_size=64))
def test_weight_shares_are_the_same_computed_again_or_remembered(missing: list[bool]) -> None:
    card = Scorecard(load_profile())
    n = len(card.weights)
    scores = [NO_SCORE if missing[i % len(missing)] else 50 for i in range(n)]
    first = card.effective_weights(scores)
    assert first == card._effective_weights(scores)
    assert card.effective_weights(list(scores)) == first
    present = [s for s, score in zip(first, scores, strict=True) if score != NO_SCORE]
    if any(score != NO_SCORE for score in scores) and sum(present):
        assert abs(sum(first) - 1.0) < 1e-9
