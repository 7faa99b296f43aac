"""An amount column (revenue, seats) mapped from a real-shaped export feeds a signal."""

import subprocess
import sys

import orjson

PROFILE = """
name = "revenue_watch"
description = "The trend of what customers spend."

[zones]
healthy = 75
at_risk = 40

[categories.usage]
weight = 100
signals = { revenue_trend = 100 }

[signals.revenue_trend]
kind = "usage_trend"
series = "amounts"
"""


def _purchases(tmp_path) -> str:
    """One customer who buys every day for four weeks: the same number of items, but
    the money falls from about 100 a day to about 20 a day in the second fortnight."""
    rows = ["customer,date,items,usd"]
    for day in range(1, 29):
        usd = 101.25 if day <= 14 else 19.75
        rows.append(f"c1,2024-02-{day:02d},2,{usd:.2f}")
    rows.append("c1,2024-02-29,2,20.00")
    path = tmp_path / "purchases.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_an_amount_column_feeds_a_trend_signal(tmp_path) -> None:
    profile = tmp_path / "revenue.toml"
    profile.write_text(PROFILE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "replay",
            _purchases(tmp_path),
            "--profile",
            str(profile),
            "--map",
            "account_id=customer,ts=date,type=const:value_action,value=items,amount=usd",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    changes = [
        o for o in map(orjson.loads, done.stdout.splitlines()) if o["kind"] == "score_changed"
    ]
    moves = [s for o in changes for s in o["signals"] if s["signal"] == "revenue_trend"]
    # the items bought did not change; the money did, and the signal reads the money
    assert {m["evidence"]["series"] for m in moves} == {"amounts"}
    assert moves[-1]["score"] == 10
    assert moves[-1]["evidence"]["last_14d"] < 0.75 * moves[-1]["evidence"]["prior_14d"]
    assert changes[-1]["score"] == 10  # the one signal at 10 (in onboarding, zoned so)
    assert b"rejected: " not in done.stderr
