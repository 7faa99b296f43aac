"""scoring.feed: each outcome of one record fed to the book, through the real engine."""

from __future__ import annotations

from scoring.book import AccountBook
from scoring.engine import HealthEngine, ScoringConfig
from scoring.feed import Outcome, feed
from scoring.profile import load_profile
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

DAY0 = 20_000 * MS_PER_DAY


def book() -> AccountBook:
    return AccountBook(HealthEngine(ScoringConfig(load_profile(), 5)))


def login(event_id: str, account: str, day: int) -> TelemetryEvent:
    return TelemetryEvent(event_id, account, EventType.LOGIN, DAY0 + day * MS_PER_DAY, 1, "u1")


def tick(day: int) -> TelemetryEvent:
    return TelemetryEvent("", "", EventType.TICK, DAY0 + day * MS_PER_DAY)


def test_an_applied_event_touches_its_account_and_emits_its_first_score() -> None:
    accounts = book()
    fed = feed(accounts, login("e1", "acct-1", 0))
    assert fed.outcome is Outcome.APPLIED
    assert list(fed.touched) == ["acct-1"]
    assert [account for account, _ in fed.outputs] == ["acct-1"]
    assert fed.outputs[0][1]["kind"] == "score_changed"
    again = feed(accounts, login("e2", "acct-1", 0))
    assert again.outcome is Outcome.APPLIED and list(again.touched) == ["acct-1"]


def test_a_repeated_event_id_is_a_duplicate_and_changes_nothing() -> None:
    accounts = book()
    feed(accounts, login("e1", "acct-1", 0))
    fed = feed(accounts, login("e1", "acct-1", 0))
    assert fed.outcome is Outcome.DUPLICATE
    assert not fed.outputs and not fed.touched


def test_a_record_at_or_before_the_accounts_log_position_was_already_applied() -> None:
    accounts = book()
    feed(accounts, login("e1", "acct-1", 0), position=(0, 10))
    fed = feed(accounts, login("e2", "acct-1", 0), position=(0, 10))
    assert fed.outcome is Outcome.ALREADY_APPLIED
    assert feed(accounts, login("e3", "acct-1", 0), position=(0, 11)).outcome is Outcome.APPLIED


def test_an_event_older_than_the_windows_is_too_old_and_says_why() -> None:
    accounts = book()
    feed(accounts, login("e1", "acct-1", 200))
    fed = feed(accounts, login("e0", "acct-1", 0))
    assert fed.outcome is Outcome.TOO_OLD
    assert "more than 90 days before" in fed.error
    assert not fed.touched


def test_a_tick_advances_every_account_of_the_book_or_those_it_is_given() -> None:
    accounts = book()
    feed(accounts, login("e1", "acct-1", 0))
    feed(accounts, login("e2", "acct-2", 0))
    only = feed(accounts, tick(1), tick_accounts=["acct-2"])
    assert only.outcome is Outcome.TICKED and list(only.touched) == ["acct-2"]
    every = feed(accounts, tick(2))
    assert every.outcome is Outcome.TICKED and sorted(every.touched) == ["acct-1", "acct-2"]
    assert feed(accounts, tick(2)).touched == []  # nothing left to advance that day
