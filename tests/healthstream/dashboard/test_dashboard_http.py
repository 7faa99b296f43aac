"""``healthstream serve`` over HTTP: the pages and the JSON API agree, telemetry is text,
the token guards every route, and bad requests are answered, not crashed on."""

from __future__ import annotations

import base64
import html
import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from dashboard_history import HOSTILE, History, ServeProcess

from healthstream.cli import build_parser


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    host, _, port = base.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_the_page_and_the_api_show_the_same_book(server: ServeProcess) -> None:
    status, headers, body = get(server.base, "/?sort=score&per=10")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    _, _, api = get(server.base, "/api/book?sort=score&per=10")
    book = orjson.loads(api)
    shown = [html.unescape(a) for a in re.findall(r'data-account="([^"]*)"', body.decode())]
    assert shown == [a["account_id"] for a in book["accounts"]]
    for zone, count in book["zones"].items():
        assert re.search(rf'data-zone="{zone}">[^<]*<b class="count">{count}</b>', body.decode())


def test_an_account_and_the_alerts_as_json(server: ServeProcess, history: History) -> None:
    status, _, body = get(server.base, "/api/accounts/acct-00007?before=1000000")
    account = orjson.loads(body)
    assert status == 200 and account["account_id"] == "acct-00007"
    mine = [o for o in history.outputs if o["account_id"] == "acct-00007"]
    assert [c["seq"] for c in account["changes"]] == [
        o["seq"] for o in mine if o["kind"] != "alert"
    ][::-1][:50]
    assert {"scores", "facts", "alerts", "older", "reason", "action"} <= set(account)
    status, _, body = get(server.base, "/api/alerts?per=5")
    alerts = orjson.loads(body)
    assert status == 200 and len(alerts["alerts"]) == 5
    assert alerts["total"] == sum(1 for o in history.outputs if o["kind"] == "alert")


def test_a_hostile_account_id_is_text_everywhere(server: ServeProcess) -> None:
    escaped = html.escape(HOSTILE, quote=True).encode()
    link = ("/accounts/" + quote(HOSTILE, safe="")).encode()
    for path in ("/", "/?q=" + quote("<script>"), "/accounts/" + quote(HOSTILE, safe="")):
        status, _, body = get(server.base, path)
        assert status == 200, body[:300]
        assert b"<script" not in body.lower() and b"<b>&amp;" not in body
        assert escaped in body
    _, _, book = get(server.base, "/")
    assert link in book
    _, _, alerts = get(server.base, "/alerts?per=200")
    assert b"<script" not in alerts.lower()
    status, _, body = get(server.base, "/api/accounts/" + quote(HOSTILE, safe=""))
    assert status == 200 and orjson.loads(body)["account_id"] == HOSTILE


def test_headers_forbid_scripts_and_framing(server: ServeProcess) -> None:
    for path in ("/", "/api/book", "/static/dashboard.css", "/nowhere"):
        _, headers, _ = get(server.base, path)
        assert "script-src" not in headers["Content-Security-Policy"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/?zone=purple", 400, b"zone: one of"),
        ("/api/book?sort=payload", 400, b"sort: one of"),
        ("/api/book?page=0", 400, b"page: must be from 1"),
        ("/accounts/nobody", 404, b"no account"),
        ("/api/accounts/nobody", 404, b"no account"),
        ("/api/accounts/%FF%FE", 400, b"not UTF-8"),
        ("/alerts?severity=purple", 400, b"severity: one of"),
        ("/nowhere", 404, b"Not Found"),
    ],
)
def test_bad_requests_are_answered(server: ServeProcess, path: str, status: int, message: bytes):
    got, headers, body = get(server.base, path)
    assert got == status and message in body
    if path.startswith("/api/"):
        assert headers["Content-Type"].startswith("application/json")


@pytest.fixture(scope="module")
def guarded(history: History) -> Iterator[ServeProcess]:
    serving = ServeProcess(history.url, token="s3cret-token")
    try:
        yield serving
    finally:
        serving.stop()


def test_the_token_guards_every_route(guarded: ServeProcess) -> None:
    assert "token required" in guarded.announced and "s3cret" not in guarded.announced
    basic = base64.b64encode(b"csm:s3cret-token").decode()
    wrong = base64.b64encode(b"csm:guess").decode()
    for path in ("/", "/accounts/acct-00001", "/alerts", "/api/book", "/static/dashboard.css"):
        status, headers, body = get(guarded.base, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert b"acct-" not in body
        for header in ("Bearer guess", f"Basic {wrong}", "s3cret-token", "Bearer"):
            assert get(guarded.base, path, {"Authorization": header})[0] == 401
        for header in ("Bearer s3cret-token", f"Basic {basic}"):
            assert get(guarded.base, path, {"Authorization": header})[0] == 200


def test_serve_listens_on_this_machine_only_unless_told(server: ServeProcess) -> None:
    args = build_parser().parse_args(["serve", "--history", "sqlite:///x.db"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    assert server.announced.startswith("healthstream serve: http://127.0.0.1:")
    assert "read-only" in server.announced


def test_serve_names_a_history_it_cannot_open(tmp_path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "serve",
            "--history",
            f"sqlite:///{tmp_path}/no.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no such history file" in done.stderr
    assert not (tmp_path / "no.db").exists()
