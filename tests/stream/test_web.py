"""The worker's memory of each account's latest score changes, served by the HTTP API."""

from stream.web import RecentChanges


def _change(account: str, seq: int) -> dict[str, object]:
    return {
        "kind": "score_changed",
        "account_id": account,
        "seq": seq,
        "as_of": f"2026-01-0{seq % 9 + 1}T00:00:00.000Z",
        "score": 50 + seq,
        "zone": "at_risk",
        "previous_score": 49 + seq,
        "previous_zone": "at_risk",
        "signals": [{"name": "cadence"}],  # not kept: only the summary
    }


def test_the_latest_changes_are_kept_newest_first_up_to_the_bound() -> None:
    recent = RecentChanges(keep=3)
    recent.add([_change("a", n) for n in range(1, 6)])
    recent.add([{"kind": "alert", "account_id": "a", "seq": 6}, _change("b", 1)])
    got = recent.of("a")
    assert [c["seq"] for c in got] == [5, 4, 3]  # alerts are not score changes
    assert got[0] == {
        "seq": 5,
        "as_of": "2026-01-06T00:00:00.000Z",
        "event_time": None,
        "score": 55,
        "zone": "at_risk",
        "previous_score": 54,
        "previous_zone": "at_risk",
    }
    assert [c["seq"] for c in recent.of("b")] == [1]
    assert recent.of("nobody") == []


def test_a_worker_without_the_api_keeps_none() -> None:
    recent = RecentChanges(keep=0)
    recent.add([_change("a", n) for n in range(1, 6)])
    assert recent.of("a") == [] and recent.by_account == {}
