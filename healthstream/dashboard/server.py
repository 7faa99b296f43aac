"""The dashboard's HTTP server (aiohttp): the pages, the JSON API, the optional token.

Routes (every one ``GET``):

- ``/``: the book; ``/accounts/{id}``: an account; ``/alerts``: the alerts;
- ``/api/book``, ``/api/accounts/{id}``, ``/api/alerts``: the same data as JSON;
- ``/static/dashboard.css``: the stylesheet.

With a token (``HEALTHSTREAM_UI_TOKEN``) every route asks for it, as a bearer token or as
the password of basic auth (any user name). Queries run on a small thread pool, so a slow
query never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import unquote

import orjson
from aiohttp import web

from healthstream.dashboard.book import (
    QueryError,
    ZoneBands,
    alert_query,
    book_query,
    changes_cursor,
)
from healthstream.dashboard.pages import account_page, alerts_page, book_page, error_page
from healthstream.dashboard.store import HistoryReader
from sinks.history import HistoryError

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: no script may run, nothing is loaded from elsewhere, and no other site may frame the page
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries the token: ``Bearer TOKEN``, or
    ``Basic`` with the token as the password. Compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        given = value
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


class NotFound(LookupError):
    """An account the history does not know; answered 404."""


class Dashboard:
    """The dashboard over one history reader: an aiohttp application."""

    def __init__(
        self,
        reader: HistoryReader,
        bands: ZoneBands | None = None,
        token: str | None = None,
        threads: int = 4,
    ) -> None:
        self.reader = reader
        self.bands = bands or ZoneBands()
        self.token = token or None
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dashboard")
        self.stylesheet = (
            resources.files("healthstream.dashboard").joinpath("static/dashboard.css").read_bytes()
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.book)
        app.router.add_get("/accounts/{id:.+}", self.account)
        app.router.add_get("/alerts", self.alerts)
        app.router.add_get("/api/book", self.api_book)
        app.router.add_get("/api/accounts/{id:.+}", self.api_account)
        app.router.add_get("/api/alerts", self.api_alerts)
        app.router.add_get("/static/dashboard.css", self.css)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, app: web.Application) -> None:
        self.pool.shutdown(wait=True)
        self.reader.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    # -- middleware -------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The token check, the security headers, and errors answered as text or JSON."""
        api = request.path.startswith("/api/")
        if self.token is not None and not token_matches(
            request.headers.get("Authorization"), self.token
        ):
            response: web.StreamResponse = self._error(
                api, 401, "this page needs the HEALTHSTREAM_UI_TOKEN (bearer or basic auth)"
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="healthstream", charset="UTF-8"'
        else:
            try:
                response = await handler(request)
            except QueryError as exc:
                response = self._error(api, 400, str(exc))
            except NotFound as exc:
                response = self._error(api, 404, str(exc))
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = self._error(api, exc.status, exc.text or exc.reason)
            except HistoryError as exc:
                response = self._error(api, 503, str(exc))
            except Exception:
                log.exception("dashboard: %s failed", request.path)
                response = self._error(api, 500, "the history could not be read; see the log")
        response.headers.update(_SECURITY_HEADERS)
        return response

    def _error(self, api: bool, status: int, message: str) -> web.Response:
        if api:
            return web.Response(
                status=status,
                body=orjson.dumps({"error": message}),
                content_type="application/json",
            )
        return web.Response(
            status=status,
            text=error_page(status, message, self.reader.url),
            content_type="text/html",
        )

    # -- pages ------------------------------------------------------------------------------

    @staticmethod
    def _account_id(request: web.Request) -> str:
        """The account id as the link spelt it: from the raw path, so that an id holding
        ``/``, ``..`` or ``%`` comes back whole."""
        raw = request.raw_path.partition("?")[0]
        prefix = "/api/accounts/" if raw.startswith("/api/") else "/accounts/"
        try:
            return unquote(raw[len(prefix) :], errors="strict")
        except UnicodeDecodeError:
            raise QueryError("the account id in the path is not UTF-8") from None

    async def book(self, request: web.Request) -> web.Response:
        query = book_query(request.query)
        page = await self._run(lambda: self.reader.book(query))
        return _html(book_page(page, self.reader.url))

    async def account(self, request: web.Request) -> web.Response:
        account_id = self._account_id(request)
        before = changes_cursor(request.query)
        found, now = await self._run(
            lambda: (self.reader.account(account_id, before), self.reader.now())
        )
        if found is None:
            raise NotFound(f"no account {account_id!r} in the history")
        as_of = None if now is None else now.isoformat(timespec="milliseconds")
        bands = self.bands.of(found.facts.segment)
        return _html(account_page(found, self.reader.url, bands, as_of))

    async def alerts(self, request: web.Request) -> web.Response:
        query = alert_query(request.query)
        page, now = await self._run(lambda: (self.reader.alerts(query), self.reader.now()))
        as_of = None if now is None else now.isoformat(timespec="milliseconds")
        return _html(alerts_page(page, self.reader.url, as_of))

    async def css(self, request: web.Request) -> web.Response:
        return web.Response(body=self.stylesheet, content_type="text/css")

    # -- the JSON API -----------------------------------------------------------------------

    async def api_book(self, request: web.Request) -> web.Response:
        query = book_query(request.query)
        return _json(await self._run(lambda: self.reader.book(query)))

    async def api_account(self, request: web.Request) -> web.Response:
        account_id = self._account_id(request)
        before = changes_cursor(request.query)
        found = await self._run(lambda: self.reader.account(account_id, before))
        if found is None:
            raise NotFound(f"no account {account_id!r} in the history")
        return _json(found)

    async def api_alerts(self, request: web.Request) -> web.Response:
        query = alert_query(request.query)
        return _json(await self._run(lambda: self.reader.alerts(query)))


def _html(markup: str) -> web.Response:
    return web.Response(text=markup, content_type="text/html")


def _json(value: Any) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


async def _serve(
    dashboard: Dashboard, host: str, port: int, announce: Callable[[str], None]
) -> None:
    runner = web.AppRunner(dashboard.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        for address in runner.addresses:
            shown_host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            announce(f"http://{shown_host}:{address[1]}/")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(
    url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    bands: ZoneBands | None = None,
) -> None:
    """Serve the dashboard over the history at ``url`` until SIGINT or SIGTERM."""
    reader = HistoryReader(url)
    dashboard = Dashboard(reader, bands, token)

    def announce(address: str) -> None:
        guarded = " (token required)" if token else ""
        print(
            f"healthstream serve: {address} over {reader.url}, read-only{guarded}",
            file=sys.stderr,
            flush=True,
        )

    asyncio.run(_serve(dashboard, host, port, announce))
