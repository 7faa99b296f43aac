"""The worker's HTTP API: an account's score and why, and the accounts of a zone.

- ``GET /accounts/{id}/``: the account's score, zone, category and signal points,
  detectors, overrides, recommended action, and its last score changes. A worker that does
  not hold the account's partition forwards the request to the one that does (Faust's table
  routing), so any worker answers for any account.
- ``GET /accounts/?zone=critical&limit=100``: the accounts in a zone, lowest score first,
  gathered from every worker of the group.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.web import Request, Response, View
from yarl import URL

from scoring.engine import HealthEngine
from scoring.profile import ZONES
from stream.worker import BatchScorer

RECENT = 10
_SUMMARY = ("seq", "as_of", "event_time", "score", "zone", "previous_score", "previous_zone")


class RecentChanges:
    """The last score changes of each account this worker has emitted since it started."""

    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        self.by_account: dict[str, deque[dict[str, Any]]] = {}

    def add(self, outputs: Iterable[dict[str, Any]]) -> None:
        for out in outputs:
            if out["kind"] != "score_changed":
                continue
            ring = self.by_account.get(out["account_id"])
            if ring is None:
                ring = self.by_account[out["account_id"]] = deque(maxlen=self.keep)
            ring.append({k: out.get(k) for k in _SUMMARY})

    def of(self, account_id: str) -> list[dict[str, Any]]:
        return list(reversed(self.by_account.get(account_id, ())))


def add_account_views(
    app: faust.App,
    table: Any,
    scorer: BatchScorer,
    engine: HealthEngine,
    recent: RecentChanges,
    local_accounts: Callable[[], Iterable[str]],
) -> None:
    """Register the account views on the app's web server."""
    zones = (*ZONES, "onboarding")

    @app.page("/accounts/{account_id}/")
    class Account(View):
        @app.table_route(table=table, match_info="account_id")
        async def get(self, request: Request, account_id: str) -> Response:
            if scorer.states.get(account_id) is None:
                return self.json({"error": f"no account {account_id!r}"}, status=404)
            description = engine.describe(account_id, scorer.book.state(account_id))
            description["recent_changes"] = recent.of(account_id)
            return self.json(description)

    @app.page("/accounts/")
    class Accounts(View):
        async def get(self, request: Request) -> Response:
            zone = request.query.get("zone")
            if zone is not None and zone not in zones:
                return self.json(
                    {"error": f"zone {zone!r}: use one of {', '.join(zones)}"}, status=400
                )
            try:
                limit = int(request.query.get("limit", "100"))
            except ValueError:
                return self.json({"error": "limit: expected a whole number"}, status=400)
            found = [_summary(scorer, a) for a in local_accounts()]
            found = [a for a in found if zone is None or a["zone"] == zone]
            if "local" not in request.query:
                found += await _from_other_workers(app, table, request)
            found.sort(key=lambda a: (a["score"], a["account_id"]))
            return self.json({"zone": zone, "count": len(found), "accounts": found[:limit]})


def _summary(scorer: BatchScorer, account_id: str) -> dict[str, Any]:
    state = scorer.book.state(account_id)
    return {
        "account_id": account_id,
        "score": state.last_score,
        "zone": state.last_zone,
        "seq": state.seq,
    }


async def _from_other_workers(app: faust.App, table: Any, request: Request) -> list[Any]:
    """Ask every other worker of the group for its own accounts (``local``)."""
    me = (app.conf.canonical_url.host, app.conf.canonical_url.port)
    gathered: list[Any] = []
    for host in app.router.table_metadata(table.name):
        url = URL(host)
        if (url.host, url.port) == me:
            continue
        target = request.url.with_host(url.host or "").with_port(url.port)
        async with app.http_client.get(target.update_query(local="1")) as response:
            gathered += (await response.json())["accounts"]
    return gathered
