"""Small hand-built record streams shared by the stream tests."""

from __future__ import annotations

from typing import Any

import orjson

from windows.telemetry import MS_PER_DAY

DAY0 = 20_454  # 2026-01-01
SILENT = "acct-silent"


def silent_account_stream(
    accounts: int = 8, days: int = 64, silent_after: int = 24
) -> list[dict[str, Any]]:
    """Busy accounts plus one that goes quiet after ``silent_after`` days; a tick per day."""
    records: list[dict[str, Any]] = []
    n = 0
    for d in range(days):
        day_ms = (DAY0 + d) * MS_PER_DAY
        if d:
            records.append({"type": "tick", "ts": day_ms})
        names = [f"acct-{i}" for i in range(accounts)] + [SILENT]
        for i, account in enumerate(names):
            if account == SILENT and d >= silent_after:
                continue
            for k, etype in enumerate(("login", "value_action", "feature_used")):
                n += 1
                records.append(
                    {
                        "event_id": f"{account}-{n}",
                        "account_id": account,
                        "type": etype,
                        "ts": day_ms + 3_600_000 * (1 + i % 8) + k,
                        "user_id": f"{account}-u{d % 3}",
                        "value": 1 + (d * (i + 1)) % 4,
                        "attrs": {"feature": ("reports", "alerts", "dashboards")[(d + i) % 3]},
                    }
                )
    return records


def as_lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def canonical(outputs: list[dict[str, Any]]) -> list[bytes]:
    """Outputs in a comparable order: by account, then by seq."""
    ordered = sorted(outputs, key=lambda o: (o["account_id"], o["seq"]))
    return [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in ordered]
