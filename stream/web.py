"""The worker's HTTP API: an account's score and why, and the accounts of a zone.

- ``GET /accounts/{id}/``: the account's score, zone, category and signal points,
  detectors, overrides, recommended action, and its last score changes. A worker that does
  not hold the account's partition forwards the request to the one that does (Faust's table
  routing), so any worker answers for any account.
- ``GET /accounts/?zone=critical&limit=100``: the accounts in a zone, lowest score first,
  gathered from every worker of the group; ``limit`` is 1 to 1,000 (default 100).

Faust's own pages are off unless ``web_builtin_views`` is set (see ``stream.app``). A
request line over 8 KB is answered 414 and a header line over 8 KB 431, each with a line
at debug level rather than aiohttp's error with a traceback (``with_request_limits``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, cast

import faust
import orjson
from aiohttp import web as aiohttp_web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server
from faust.web import Request, Response, View
from yarl import URL

from scoring.engine import HealthEngine
from scoring.outputs import OutputEvent
from scoring.profile import ZONES
from stream.faust_internals import serve_web_with
from stream.scorer import BatchScorer

log = logging.getLogger(__name__)

RECENT = 10
#: a view's handler of a request for one account
Handler = Callable[[Any, Request, str], Awaitable[Response]]
#: the most accounts ``GET /accounts/`` lists
MAX_LIMIT = 1000
_SUMMARY = ("seq", "as_of", "event_time", "score", "zone", "previous_score", "previous_zone")


class RecentChanges:
    """The last score changes of each account this worker has emitted since it started,
    for the HTTP API (``keep`` 0: none kept, as when the API is off)."""

    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        #: per account, its latest changes oldest first, each the values of ``_SUMMARY``: a
        #: tuple each in a list take about a third of the memory of a dict each in a deque
        self.by_account: dict[str, list[tuple[Any, ...]]] = {}

    def add(self, outputs: Iterable[OutputEvent]) -> None:
        if not self.keep:
            return
        for out in outputs:
            if out["kind"] != "score_changed":
                continue
            ring = self.by_account.get(out["account_id"])
            if ring is None:
                ring = self.by_account[out["account_id"]] = []
            ring.append(tuple(out.get(k) for k in _SUMMARY))
            if len(ring) > self.keep:
                del ring[0]

    def of(self, account_id: str) -> list[dict[str, Any]]:
        """Newest first."""
        return [
            dict(zip(_SUMMARY, c, strict=True))
            for c in reversed(self.by_account.get(account_id, ()))
        ]


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
    # Faust's types have a routed handler take (view, request) only; it also passes the
    # URL's parameters, as every Faust view does
    by_account: Callable[[Handler], Handler] = cast(
        Any, app.table_route(table=table, match_info="account_id")
    )

    @app.page("/accounts/{account_id}/")
    class Account(View):
        @by_account
        async def get(self, request: Request, account_id: str) -> Response:
            state = scorer.account(account_id)
            if state is None:
                return self.json({"error": f"no account {account_id!r}"}, status=404)
            description = engine.describe(account_id, state)
            return self.json({**description, "recent_changes": recent.of(account_id)})

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
                limit = 0
            if not 1 <= limit <= MAX_LIMIT:
                return self.json(
                    {"error": f"limit: expected a whole number from 1 to {MAX_LIMIT}"}, status=400
                )
            found = [_summary(scorer, a) for a in local_accounts()]
            found = [a for a in found if zone is None or a["zone"] == zone]
            if "local" not in request.query:
                found += await _from_other_workers(app, table, request)
            found.sort(key=lambda a: (a["score"], a["account_id"]))
            return self.json({"zone": zone, "count": len(found), "accounts": found[:limit]})


def _summary(scorer: BatchScorer, account_id: str) -> dict[str, Any]:
    state = scorer.account(account_id)
    if state is None:
        raise LookupError(f"account {account_id!r} is listed but not held")
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


#: how a request line starts: a method (the pure-Python parser reports the whole line) or
#: the request target (aiohttp's C parser reports only that): an origin path, ``*``, or an
#: absolute URL; any other over-long line is a header
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ |/|\*|[A-Za-z][A-Za-z0-9+.-]*://")


class LimitedRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering over-long lines with their own status.

    aiohttp answers a request line or header line over its limit (8,190 bytes) 400 and
    logs it at ERROR with a traceback, so anyone can fill the log with long URLs. Here
    such a request is answered 414 (request line) or 431 (header) with a JSON error, and
    logged in one line at debug level."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> aiohttp_web.StreamResponse:
        if not isinstance(exc, LineTooLong):
            return super().handle_error(request, status, exc, message)
        line, limit = exc.args[0], exc.args[1]
        start = bytes(line[:16]) if isinstance(line, bytes | bytearray) else b""
        if _REQUEST_LINE.match(start):
            status, what = HTTPStatus.REQUEST_URI_TOO_LONG, "request line"
        else:
            status, what = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line"
        log.debug("refused a request from %s: %s over %s bytes", request.remote, what, limit)
        response = aiohttp_web.Response(
            status=status,
            body=orjson.dumps({"error": f"{what} over {limit} bytes"}),
            content_type="application/json",
        )
        response.force_close()
        return response


class LimitedServer(Server):
    """aiohttp's low-level server, with ``LimitedRequestHandler`` for each connection."""

    def __call__(self) -> RequestHandler:
        return LimitedRequestHandler(self, loop=self._loop, **self._kwargs)


class LimitedAppRunner(aiohttp_web.AppRunner):
    """aiohttp's application runner, serving through ``LimitedServer``."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        return LimitedServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


def with_request_limits(web: Any) -> Any:
    """Faust's aiohttp web driver, serving through ``LimitedAppRunner`` (as Faust's runner:
    no access log)."""
    return serve_web_with(web, LimitedAppRunner(web.web_app, access_log=None))
