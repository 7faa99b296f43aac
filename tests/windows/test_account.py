"""AccountState folding and snapshots."""

import random

import pytest

from windows.account import AccountState, Series
from windows.buckets import WINDOWS
from windows.snapshot import SnapshotError, decode_state, encode_state
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

DAY0 = 20_454  # 2026-01-01


def ev(
    etype: EventType, day: int, value: float = 1, user: str | None = None, **attrs: object
) -> TelemetryEvent:
    return TelemetryEvent(
        event_id=f"e{random.random()}",
        account_id="a",
        type=etype,
        ts_ms=day * MS_PER_DAY + 3_600_000,
        value=value,
        user_id=user,
        attrs=dict(attrs),
    )


def test_out_of_order_event_lands_in_its_own_day() -> None:
    s = AccountState()
    s.apply(ev(EventType.VALUE_ACTION, DAY0 + 10, 3))
    s.apply(ev(EventType.VALUE_ACTION, DAY0 + 4, 2))
    b = s.buckets(Series.VALUE_ACTIONS)
    assert b is not None
    assert s.clock == DAY0 + 10
    assert b.day_count(s.clock, DAY0 + 4) == 2
    assert b.day_count(s.clock, DAY0 + 10) == 3


def test_event_older_than_horizon_is_refused() -> None:
    s = AccountState()
    s.apply(ev(EventType.LOGIN, DAY0 + 100))
    assert not s.apply(ev(EventType.LOGIN, DAY0 + 5))
    assert s.total(Series.LOGINS, 90) == 1


def test_silent_account_windows_roll_with_the_clock() -> None:
    s = AccountState()
    for d in range(14):
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d, 5))
    assert s.total(Series.VALUE_ACTIONS, 14) == 70
    s.advance_to(DAY0 + 20)
    assert s.total(Series.VALUE_ACTIONS, 14) == 5 * 7
    s.advance_to(DAY0 + 40)
    assert s.total(Series.VALUE_ACTIONS, 14) == 0


def test_facts_tickets_and_champion() -> None:
    s = AccountState()
    s.apply(ev(EventType.ACCOUNT_FACTS, DAY0, segment="smb", seats=12, renewal_date="2026-03-02"))
    s.apply(ev(EventType.CHAMPION_CHANGED, DAY0, user="u1", status="assigned"))
    s.apply(ev(EventType.SUPPORT_TICKET_OPENED, DAY0 + 1, ticket_id="t1"))
    s.apply(ev(EventType.SUPPORT_TICKET_ESCALATED, DAY0 + 2, ticket_id="t1"))
    assert s.escalated_open == ["t1"]
    s.apply(ev(EventType.SUPPORT_TICKET_RESOLVED, DAY0 + 3, ticket_id="t1", csat=4))
    s.apply(ev(EventType.LOGIN, DAY0 + 5, user="u1"))
    assert s.segment == "smb" and s.seats == 12
    assert s.renewal_day == DAY0 + 60
    assert s.open_tickets == {} and s.escalated_open == []
    assert s.csat_avg == 4.0
    assert s.champion_last_seen_day == DAY0 + 5
    s.apply(ev(EventType.CHAMPION_CHANGED, DAY0 + 6, status="departed"))
    assert s.champion_departed


def random_state(seed: int) -> AccountState:
    rng = random.Random(seed)
    s = AccountState()
    types = list(EventType)
    types.remove(EventType.TICK)
    for i in range(300):
        etype = rng.choice(types)
        s.apply(
            ev(
                etype,
                DAY0 + i // 3 - rng.randrange(0, 5),
                value=rng.randrange(0, 10 ** rng.randrange(1, 7)),
                user=f"u{rng.randrange(20)}",
                feature=f"f{rng.randrange(40)}",
                ticket_id=f"t{rng.randrange(9)}",
                csat=rng.randrange(1, 6),
                response_hours=rng.random() * 90,
                days_late=rng.randrange(40),
                errors=rng.randrange(3),
                status=rng.choice(["assigned", "departed"]),
                action=rng.choice(["set", "set", "clear"]),
                score=rng.randrange(0, 101),
                reason="held for the renewal talks",
                expires_at_ms=(DAY0 + i // 3 + 7) * MS_PER_DAY,
            )
        )
    return s


@pytest.mark.parametrize("seed", range(8))
def test_snapshot_round_trip_is_exact(seed: int) -> None:
    s = random_state(seed)
    blob = encode_state(s)
    back = decode_state(blob)
    assert encode_state(back) == blob
    for series in Series:
        a, b = s.buckets(series), back.buckets(series)
        if a is None or a.is_empty():
            continue
        assert b is not None
        assert list(a.counts) == list(b.counts)
        assert list(a.sums) == list(b.sums)  # derived sums are rebuilt exactly
        assert [a.trend(w) for w in WINDOWS] == [b.trend(w) for w in WINDOWS]


def test_the_id_memory_matches_whole_hashes_only() -> None:
    s = AccountState()
    s.remember(b"\x00\x00\x00\x00ABCD", 32)
    s.remember(b"EFGH\x00\x00\x00\x00", 32)
    assert s.seen(b"EFGH\x00\x00\x00\x00")
    assert not s.seen(b"ABCDEFGH")  # the bytes are there, across two hashes
    s.remember(b"ABCDEFGH", 32)
    assert s.seen(b"ABCDEFGH")
    for n in range(32):
        s.remember(n.to_bytes(8, "little"), 32)
    assert len(s.recent_ids) == 8 * 32 and not s.seen(b"ABCDEFGH")  # the oldest forgotten


def test_a_young_account_keeps_no_long_history_until_its_days_leave_the_view() -> None:
    s = AccountState()
    for day in range(DAY0, DAY0 + 84):
        assert s.apply(ev(EventType.VALUE_ACTION, day, 3))
    assert s.long_weeks == {}  # nothing of its life has left the 84-day view
    for day in range(DAY0 + 84, DAY0 + 100):
        assert s.apply(ev(EventType.VALUE_ACTION, day, 3))
    record = s.long_weeks[str(int(Series.VALUE_ACTIONS))]
    assert record[3] >= 1 and record[1] == 21.0  # whole weeks of 3 a day, folded


def test_snapshot_rejects_garbage() -> None:
    with pytest.raises(SnapshotError):
        decode_state(b"\x07nonsense")


def test_cadence_counts_days_of_use_for_life_and_the_longest_silence() -> None:
    s = AccountState()
    for day in (0, 1, 1, 5, 20):  # two events on day 1 are one day of use
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + day))
    s.apply(ev(EventType.NPS_RESPONSE, DAY0 + 21, 9))  # not use of the product
    assert (s.use_days, s.first_use_day, s.last_use_day) == (4, DAY0, DAY0 + 20)
    assert s.longest_silence == 14  # days 6..19
    s.apply(ev(EventType.LOGIN, DAY0 + 3))  # a late event on a new day of use
    s.apply(ev(EventType.API_CALLS, DAY0 + 5, 10))  # a late event on a day already counted
    assert s.use_days == 5
    s.advance_to(DAY0 + 200)  # far beyond the windows, the cadence is still known
    assert s.use_days == 5 and s.days_silent() == 179
    assert s.has_seen(Series.LOGINS) and not s.has_seen(Series.FEATURE_USES)
    back = decode_state(encode_state(s))
    assert (back.use_days, back.last_use_day, back.longest_silence) == (5, DAY0 + 20, 14)
    assert back.seen_series == s.seen_series  # after the buckets are empty, too


def test_usual_gap_counts_prior_days_so_one_day_of_use_is_not_a_habit() -> None:
    s = AccountState()
    s.apply(ev(EventType.VALUE_ACTION, DAY0))
    s.advance_to(DAY0 + 9)
    assert s.usual_gap(30) == 40.0  # (10 days known + 30) / 1 day of use
    assert AccountState().usual_gap(30) == float("inf")


def test_amounts_are_summed_in_whole_units_beside_the_count() -> None:
    s = AccountState()
    s.apply(ev(EventType.VALUE_ACTION, DAY0, 2, amount=12.4))
    s.apply(ev(EventType.VALUE_ACTION, DAY0, 1, amount=7.6))
    s.apply(ev(EventType.API_CALLS, DAY0, 100))  # no amount: nothing to add
    assert s.total(Series.VALUE_ACTIONS, 14) == 3
    assert s.total(Series.AMOUNTS, 14) == 20  # 12 + 8
    assert decode_state(encode_state(s)).total(Series.AMOUNTS, 14) == 20
