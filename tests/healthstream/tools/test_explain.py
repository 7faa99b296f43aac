"""``healthstream explain``: one account's score and its reasons, after an offline replay."""

import subprocess
import sys

import orjson

DAY_MS = 86_400_000
T0 = 20_454 * DAY_MS  # 2026-01-01


def _history(path) -> None:
    events = [
        {"type": "account_facts", "attrs": {"contract_start": "2024-03-01", "segment": "smb"}},
        {"type": "champion_changed", "user_id": "ana", "attrs": {"status": "assigned"}},
    ]
    lines = []
    n = 0
    for e in events:
        n += 1
        lines.append({"event_id": f"x{n}", "account_id": "acme", "ts": T0, **e})
    for day in range(40):
        for user in ("ana", "bo"):
            n += 1
            lines.append(
                {
                    "event_id": f"x{n}",
                    "account_id": "acme",
                    "type": "login",
                    "ts": T0 + day * DAY_MS + 3600_000,
                    "user_id": user,
                }
            )
        n += 1
        lines.append(
            {
                "event_id": f"x{n}",
                "account_id": "acme",
                "type": "value_action",
                "ts": T0 + day * DAY_MS + 7200_000,
                "value": 3,
            }
        )
        lines.append(
            {
                "event_id": f"o{n}",
                "account_id": "other",
                "type": "login",
                "ts": T0 + day * DAY_MS + 7200_000,
            }
        )
    lines.append(
        {
            "event_id": "dep",
            "account_id": "acme",
            "type": "champion_changed",
            "ts": T0 + 39 * DAY_MS + 9 * 3600_000,
            "attrs": {"status": "departed"},
        }
    )
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")


def _explain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "healthstream.cli", "explain", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_explain_prints_the_score_its_reasons_and_the_action(tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    _history(events)
    done = _explain("acme", "--events", str(events))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Score 40/100, zone AT_RISK" in out
    assert "champion_departed: cap 40" in out
    assert "Recommended action: Champion gone" in out
    assert "login_frequency" in out and "Detectors" in out
    assert "override champion_departed applied (cap 40)" in out
    as_json = _explain("acme", "--events", str(events), "--json")
    description = orjson.loads(as_json.stdout)
    assert description["score"] == 40 and description["computed_score"] > 40
    assert [o["override"] for o in description["overrides"]] == ["champion_departed"]
    assert len(description["signals"]) == 10


def test_explain_says_when_the_account_is_unknown(tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    _history(events)
    done = _explain("nobody", "--events", str(events))
    assert done.returncode == 1
    assert "no events for account 'nobody'" in done.stderr


def test_explain_reads_a_mapped_export_in_any_order_and_names_what_it_left_out(tmp_path) -> None:
    rows = ["customer,date,cds"]
    for customer in ("c2", "c1"):  # customer order, as exports come
        rows += [f"{customer},1997-0{m}-15,2" for m in range(1, 10)]
    path = tmp_path / "purchases.csv"
    path.write_text("\n".join(rows) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "healthstream.cli", "explain", "c1", "--events", str(path)]
        + ["--map", "account_id=customer,ts=date,type=const:value_action,value=cds"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    text = done.stdout.decode()
    assert "Account c1, as of 1997-09-15" in text
    assert "  cadence " in text
    left_out = next(line for line in text.splitlines() if "left out, no data:" in line)
    assert "login_frequency" in left_out and "csat" in left_out
    assert b"sorted 18 records by time" in done.stderr
