"""The webhook sink against a real HTTP server on 127.0.0.1 that checks every signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sinks import DeliveryFailure, RetryPolicy, WebhookSink, verify_signature
from sinks.webhook import parse_retry_after

SECRET = b"s3cret-signing-key"
QUICK = RetryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


def output(account_id: str, seq: int, score: int = 50) -> dict[str, Any]:
    return {
        "kind": "score_changed",
        "account_id": account_id,
        "seq": seq,
        "score": score,
        "zone": "at_risk",
        "event_time": "2026-03-14T00:00:00.000+00:00",
        "config_version": "c2c775cfdcff",
    }


@dataclass
class Received:
    body: bytes
    timestamp: str
    signature: str
    at: float


@dataclass
class Receiver:
    """A webhook endpoint: answers from ``answers`` in turn (then 200), keeps what it got."""

    answers: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    delay_first_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers["X-Healthstream-Timestamp"]
        signature = request.headers["X-Healthstream-Signature"]
        self.requests.append(Received(body, timestamp, signature, time.monotonic()))
        # the receiver's own check, written from the documented recipe
        expected = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, f"sha256={expected}"):
            return web.Response(status=401)
        if abs(time.time() - int(timestamp)) > 300:
            return web.Response(status=401)
        if self.hold is not None:
            await self.hold.wait()
        if self.delay_first_s and len(self.requests) == 1:
            await asyncio.sleep(self.delay_first_s)
        status, headers = 200, {}
        if self.answers:
            answer = self.answers.pop(0)
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
        if status == 200:
            self.accepted.append(orjson.loads(body))
        return web.Response(status=status, headers=headers)


async def serve(receiver: Receiver) -> TestServer:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


class GiveUps:
    """A give-up handler that records what it was handed, as the worker's dead-letter path."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], DeliveryFailure]] = []

    async def __call__(self, event: dict[str, Any], failure: DeliveryFailure) -> None:
        self.events.append((event, failure))


def test_signed_posts_arrive_once_each_in_seq_order_per_account() -> None:
    receiver = Receiver()
    events = [output(f"acct-{a}", seq) for seq in range(1, 6) for a in range(7)]

    async def scenario() -> None:
        server = await serve(receiver)
        gave_up = GiveUps()
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, gave_up, senders=3)
        await sink.deliver_batch(events[:20])
        await sink.deliver_batch(events[20:])
        await sink.drain()
        assert sink.delivered == len(events) and sink.queued == 0
        await sink.aclose()
        await server.close()
        assert gave_up.events == []

    run(scenario)
    assert len(receiver.requests) == len(events)
    assert sorted(receiver.accepted, key=lambda e: (e["account_id"], e["seq"])) == sorted(
        events, key=lambda e: (e["account_id"], e["seq"])
    )
    for account in range(7):
        seqs = [e["seq"] for e in receiver.accepted if e["account_id"] == f"acct-{account}"]
        assert seqs == [1, 2, 3, 4, 5]
    for request in receiver.requests:
        assert verify_signature(SECRET, request.body, request.timestamp, request.signature)


def test_a_500_then_200_delivers_the_event_once_after_one_retry() -> None:
    receiver = Receiver(answers=[500])

    async def scenario() -> None:
        server = await serve(receiver)
        gave_up = GiveUps()
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, gave_up, retry=QUICK)
        await sink.deliver_batch([output("acct-1", 1)])
        await sink.aclose()
        await server.close()
        assert (sink.delivered, sink.retries, sink.failed) == (1, 1, 0)
        assert gave_up.events == []

    run(scenario)
    assert len(receiver.requests) == 2
    assert receiver.accepted == [output("acct-1", 1)]


def test_a_receiver_that_always_fails_leads_to_give_up_after_max_attempts() -> None:
    receiver = Receiver(answers=[503] * 10)
    gave_up = GiveUps()

    async def scenario() -> None:
        server = await serve(receiver)
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, gave_up, retry=QUICK)
        started = time.monotonic()
        await sink.deliver_batch([output("acct-1", 1), output("acct-2", 1)])
        await sink.drain()
        assert time.monotonic() - started < 2.0
        assert (sink.delivered, sink.retries, sink.failed) == (0, 4, 2)
        assert sink.failures == {"webhook_exhausted": 2}
        await sink.aclose()
        await server.close()

    run(scenario)
    assert len(receiver.requests) == 6
    assert sorted(e["account_id"] for e, _ in gave_up.events) == ["acct-1", "acct-2"]
    for _, failure in gave_up.events:
        assert failure.reason == "webhook_exhausted"
        assert failure.attempts == 3
        assert failure.error == "HTTP 503 (after 3 attempts)"


@pytest.mark.parametrize("status", [400, 404, 410, 301])
def test_other_4xx_and_redirects_are_not_retried(status: int) -> None:
    receiver = Receiver(answers=[(status, {"Location": "http://127.0.0.1:1/elsewhere"})])
    recorded: list[tuple[dict[str, Any], DeliveryFailure]] = []

    async def scenario() -> None:
        server = await serve(receiver)
        sink = WebhookSink(
            str(server.make_url("/hook")),
            SECRET,
            lambda event, failure: recorded.append((event, failure)),  # a plain function
            retry=QUICK,
        )
        await sink.deliver_batch([output("acct-1", 1)])
        await sink.aclose()
        await server.close()
        assert (sink.delivered, sink.retries, sink.failed) == (0, 0, 1)

    run(scenario)
    assert len(receiver.requests) == 1
    assert recorded == [
        (output("acct-1", 1), DeliveryFailure("webhook_rejected", f"HTTP {status}", 1))
    ]


def test_429_waits_as_long_as_retry_after_asks() -> None:
    receiver = Receiver(answers=[(429, {"Retry-After": "1"})])

    async def scenario() -> None:
        server = await serve(receiver)
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, GiveUps(), retry=QUICK)
        await sink.deliver_batch([output("acct-1", 1)])
        await sink.aclose()
        await server.close()
        assert (sink.delivered, sink.retries) == (1, 1)

    run(scenario)
    first, second = receiver.requests
    assert second.at - first.at >= 0.95  # backoff alone would have waited at most 0.05 s
    assert receiver.accepted == [output("acct-1", 1)]


def test_a_timeout_is_retried() -> None:
    receiver = Receiver(delay_first_s=1.0)

    async def scenario() -> None:
        server = await serve(receiver)
        gave_up = GiveUps()
        sink = WebhookSink(
            str(server.make_url("/hook")), SECRET, gave_up, retry=QUICK, timeout_s=0.2
        )
        await sink.deliver_batch([output("acct-1", 1)])
        await sink.drain()
        assert (sink.delivered, sink.retries, sink.failed) == (1, 1, 0)
        await sink.aclose()
        await server.close()

    run(scenario)
    assert len(receiver.requests) == 2


def test_connection_errors_are_retried_then_given_up_without_leaking_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://hook-user:hook-password@127.0.0.1:{port}/hook?token=query-token"
    gave_up = GiveUps()

    async def scenario() -> None:
        sink = WebhookSink(url, SECRET, gave_up, retry=QUICK)
        assert repr(sink).startswith(f"WebhookSink('http://hook-user@127.0.0.1:{port}/hook?…'")
        await sink.deliver_batch([output("acct-1", 1)])
        await sink.aclose()
        assert (sink.delivered, sink.retries, sink.failed) == (0, 2, 1)
        shown = repr(sink) + repr(vars(sink))
        for secret in (SECRET.decode(), "hook-password", "query-token"):
            assert secret not in shown

    with caplog.at_level(logging.DEBUG, logger="sinks.webhook"):
        run(scenario)
    [(event, failure)] = gave_up.events
    assert failure.reason == "webhook_exhausted" and failure.attempts == 3
    assert "ClientConnectorError" in failure.error
    assert "retrying" in caplog.text and "giving up" in caplog.text
    for secret in (SECRET.decode(), "hook-password", "query-token"):
        assert secret not in caplog.text
        assert secret not in failure.error


def test_a_full_queue_hands_events_to_give_up_when_asked_to() -> None:
    receiver = Receiver()
    gave_up = GiveUps()

    async def scenario() -> None:
        receiver.hold = asyncio.Event()
        server = await serve(receiver)
        sink = WebhookSink(
            str(server.make_url("/hook")),
            SECRET,
            gave_up,
            queue_size=2,
            senders=1,
            when_full="give_up",
        )
        await sink.deliver_batch([output("acct-1", seq) for seq in range(1, 6)])
        assert sink.queued == 2 and sink.failures == {"webhook_queue_full": 3}
        receiver.hold.set()
        await sink.drain()
        assert (sink.delivered, sink.failed) == (2, 3)
        await sink.aclose()
        await server.close()

    run(scenario)
    assert [e["seq"] for e in receiver.accepted] == [1, 2]
    assert [(e["seq"], f.reason) for e, f in gave_up.events] == [
        (3, "webhook_queue_full"),
        (4, "webhook_queue_full"),
        (5, "webhook_queue_full"),
    ]


def test_a_full_queue_holds_the_caller_back_by_default() -> None:
    receiver = Receiver()
    gave_up = GiveUps()

    async def scenario() -> None:
        receiver.hold = asyncio.Event()
        server = await serve(receiver)
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, gave_up, queue_size=2, senders=1)
        handing_over = asyncio.create_task(
            sink.deliver_batch([output("acct-1", seq) for seq in range(1, 7)])
        )
        await asyncio.sleep(0.3)
        assert not handing_over.done()  # one in flight, two queued, the caller waits
        assert sink.queued == 2
        receiver.hold.set()
        await handing_over
        await sink.aclose()
        await server.close()
        assert (sink.delivered, sink.failed) == (6, 0)

    run(scenario)
    assert [e["seq"] for e in receiver.accepted] == [1, 2, 3, 4, 5, 6]
    assert gave_up.events == []


def test_closing_gives_up_what_could_not_be_delivered_in_time() -> None:
    receiver = Receiver()
    gave_up = GiveUps()

    async def scenario() -> None:
        receiver.hold = asyncio.Event()  # never set: the receiver hangs
        server = await serve(receiver)
        sink = WebhookSink(
            str(server.make_url("/hook")), SECRET, gave_up, senders=1, close_timeout_s=0.2
        )
        await sink.deliver_batch([output("acct-1", seq) for seq in range(1, 4)])
        started = time.monotonic()
        await sink.aclose()
        assert time.monotonic() - started < 1.0
        with pytest.raises(RuntimeError, match="closed"):
            await sink.deliver_batch([output("acct-1", 4)])
        receiver.hold.set()
        await server.close()

    run(scenario)
    assert [(e["seq"], f.reason, f.attempts) for e, f in gave_up.events] == [
        (1, "webhook_closed", 1),
        (2, "webhook_closed", 0),
        (3, "webhook_closed", 0),
    ]


def test_verify_signature_refuses_tampering_other_keys_and_old_timestamps() -> None:
    body = orjson.dumps(output("acct-1", 1))
    now = 1_773_446_400
    timestamp = str(now)
    good = "sha256=" + hmac.new(SECRET, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, body, timestamp, good, now=now + 10)
    assert not verify_signature(SECRET, body + b" ", timestamp, good, now=now)
    assert not verify_signature(b"another key", body, timestamp, good, now=now)
    assert not verify_signature(SECRET, body, timestamp, good, now=now + 301)
    assert not verify_signature(SECRET, body, str(now + 1), good, now=now)
    assert not verify_signature(SECRET, body, "soon", good, now=now)


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_initial_s=0.5, backoff_max_s=4.0)
    rand = random.Random(1)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.delay(retry, None, rand) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed
    assert policy.delay(1, 7.0, rand) == 7.0
    assert RetryPolicy(retry_after_max_s=60).delay(1, 3600.0, rand) == 60.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, "webhook url: 'ftp://127.0.0.1/hook' is not an http"),
        ({"url": "http:///hook"}, "is not an http"),
        ({"url": "http://127.0.0.1:port/hook"}, "is not an http"),
        ({"secret": ""}, "webhook secret: must not be empty"),
        ({"senders": 0}, "senders: must be at least 1"),
        ({"queue_size": 2, "senders": 4}, "queue_size: must be at least senders"),
        ({"when_full": "drop"}, "when_full: 'drop'"),
        ({"timeout_s": 0}, "timeout_s: must be a number > 0"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"url": "http://127.0.0.1/hook", "secret": SECRET, **kwargs}
    with pytest.raises(ValueError, match=message):
        WebhookSink(give_up=GiveUps(), **arguments)


def test_bad_retry_policies_are_named() -> None:
    with pytest.raises(ValueError, match="max_attempts: must be at least 1, got 0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_max_s: must be a number >= 0, got -1"):
        RetryPolicy(backoff_max_s=-1)


def test_a_failing_give_up_handler_is_logged_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(answers=[400])

    def broken(event: dict[str, Any], failure: DeliveryFailure) -> None:
        raise ConnectionError("dead-letter topic unreachable")

    async def scenario() -> None:
        server = await serve(receiver)
        sink = WebhookSink(str(server.make_url("/hook")), SECRET, broken, senders=1)
        await sink.deliver_batch([output("acct-1", 1), output("acct-1", 2)])
        await sink.aclose()
        await server.close()
        assert (sink.delivered, sink.failed) == (1, 1)

    with caplog.at_level(logging.WARNING, logger="sinks.webhook"):
        run(scenario)
    assert [e["seq"] for e in receiver.accepted] == [2]
    assert "the give-up handler failed for acct-1 seq 1" in caplog.text
    assert "dead-letter topic unreachable" in caplog.text
