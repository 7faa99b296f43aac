"""POST output events to a URL: HMAC-signed, retried with backoff, bounded in memory.

Each event is one POST of its JSON. The body is signed with HMAC-SHA256 over
``<timestamp>.<body>``; the timestamp travels in its own header, so a receiver that
rejects old timestamps cannot be fed a recorded request again. Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff and jitter (at least as long
as a ``Retry-After`` asks); any other answer that is not 2xx is final. An event that
cannot be delivered goes to the give-up handler with the reason: nothing is dropped
silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import random
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
import orjson
from yarl import URL

from scoring.outputs import OutputEvent
from sinks.base import redact_url

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Healthstream-Signature"
TIMESTAMP_HEADER = "X-Healthstream-Timestamp"

#: why an event was handed to the give-up handler
REJECTED = "webhook_rejected"  # the receiver answered a status that is not retried (3xx, 4xx)
EXHAUSTED = "webhook_exhausted"  # every attempt failed with a retryable error
QUEUE_FULL = "webhook_queue_full"  # the queue was full and ``when_full="give_up"``
CLOSED = "webhook_closed"  # the sink closed before the event could be delivered
FAILED = "webhook_failed"  # an unexpected error while delivering (logged with its traceback)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Secret:
    """A signing key (or a URL with credentials) that never shows in a repr, log or error."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if not raw:
            raise ValueError("webhook secret: must not be empty")
        self._value = raw

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class DeliveryFailure:
    """Why an event was given up: a short ``reason`` code, the ``error`` and the attempts made."""

    reason: str
    error: str
    attempts: int


GiveUp = Callable[[OutputEvent, DeliveryFailure], Awaitable[None] | None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The n-th retry waits between half and all of ``min(backoff_max_s, backoff_initial_s *
    2**(n-1))`` seconds (the random half spreads out senders that failed together), or
    as long as the receiver's ``Retry-After`` asks when that is longer, up to
    ``retry_after_max_s``.
    """

    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1, got {self.max_attempts}")
        for name in ("backoff_initial_s", "backoff_max_s", "retry_after_max_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name}: must be a number >= 0, got {value}")

    def delay(self, retry: int, retry_after: float | None, rand: random.Random) -> float:
        """Seconds to wait before the ``retry``-th retry (counting from 1)."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (retry - 1))
        backoff = ceiling / 2 + rand.uniform(0, ceiling / 2)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, self.retry_after_max_s))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass
class _Flight:
    event: OutputEvent
    body: bytes
    attempts: int = 0


@dataclass(frozen=True)
class _Answer:
    """One attempt's result: ``error`` is None when the receiver took the event."""

    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class WebhookSink:
    """POSTs each output event's JSON to ``url``, signed with ``secret``.

    Events wait in bounded queues, one per sender; an account's events always go to the
    same sender, so they arrive in ``seq`` order. When the queue is full,
    ``when_full="wait"`` makes ``deliver_batch`` wait (back-pressure on the caller) and
    ``when_full="give_up"`` hands the event to ``give_up`` with reason
    ``webhook_queue_full``. ``give_up(event, failure)`` may be a plain or an async function.

    Counters for metrics: ``delivered``, ``failed`` (given up), ``failures`` (given up, by
    reason), ``retries`` (attempts after the first) and ``queued`` (waiting now).
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes | Secret,
        give_up: GiveUp,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        senders: int = 4,
        when_full: Literal["wait", "give_up"] = "wait",
        close_timeout_s: float = 30.0,
    ) -> None:
        self.url = redact_url(url)
        try:
            parsed = URL(url)
            valid = parsed.scheme in ("http", "https") and bool(parsed.host) and bool(parsed.port)
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"webhook url: {self.url!r} is not an http:// or https:// URL")
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        # the full URL may carry a password or a token: kept out of sight like the key
        self._endpoint = Secret(url)
        self.give_up = give_up
        self.retry = retry or RetryPolicy()
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: must be a number > 0, got {timeout_s}")
        if senders < 1:
            raise ValueError(f"senders: must be at least 1, got {senders}")
        if queue_size < senders:
            raise ValueError(f"queue_size: must be at least senders ({senders}), got {queue_size}")
        if when_full not in ("wait", "give_up"):
            raise ValueError(f"when_full: {when_full!r} (use 'wait' or 'give_up')")
        self.timeout_s = timeout_s
        self.queue_size = queue_size
        self.senders = senders
        self.when_full = when_full
        self.close_timeout_s = close_timeout_s
        self.delivered = 0
        self.failed = 0
        self.retries = 0
        self.failures: Counter[str] = Counter()
        self._rand = random.Random()
        self._queues: list[asyncio.Queue[_Flight]] = []
        self._in_flight: dict[int, _Flight] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"WebhookSink({self.url!r}, senders={self.senders}, queue_size={self.queue_size}, "
            f"when_full={self.when_full!r}, {self.retry!r})"
        )

    @property
    def queued(self) -> int:
        """Events waiting for a sender (not counting the one each sender has in hand)."""
        return sum(q.qsize() for q in self._queues)

    async def deliver_batch(self, events: Sequence[OutputEvent]) -> None:
        if self._closed:
            raise RuntimeError(f"webhook {self.url}: the sink is closed")
        if not self._tasks:
            self._start()
        for event in events:
            flight = _Flight(event, orjson.dumps(event))
            shard = zlib.crc32(str(event.get("account_id", "")).encode()) % self.senders
            queue = self._queues[shard]
            if self.when_full == "wait":
                await queue.put(flight)
                continue
            try:
                queue.put_nowait(flight)
            except asyncio.QueueFull:
                await self._hand_to_give_up(
                    event,
                    DeliveryFailure(
                        QUEUE_FULL, f"the delivery queue holds {self.queue_size} events", 0
                    ),
                )

    async def drain(self) -> None:
        """Wait until every accepted event is delivered or given up."""
        await asyncio.gather(*(queue.join() for queue in self._queues))

    async def aclose(self) -> None:
        """Drain for up to ``close_timeout_s``, give up what is left, release the connections."""
        if self._closed:
            return
        self._closed = True
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(self.drain(), self.close_timeout_s)
        except TimeoutError:
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        left = list(self._in_flight.values())
        for queue in self._queues:
            while not queue.empty():
                left.append(queue.get_nowait())
        for flight in left:
            error = f"the sink closed before delivery (waited {self.close_timeout_s:g} s)"
            await self._hand_to_give_up(
                flight.event, DeliveryFailure(CLOSED, error, flight.attempts)
            )
        if self._session is not None:
            await self._session.close()

    def _start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.senders)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": "healthstream-webhook"},
        )
        per_sender = self.queue_size // self.senders
        self._queues = [asyncio.Queue(maxsize=per_sender) for _ in range(self.senders)]
        self._tasks = [
            asyncio.create_task(self._send_from(i), name=f"webhook-sender-{i}")
            for i in range(self.senders)
        ]

    async def _send_from(self, shard: int) -> None:
        queue = self._queues[shard]
        while True:
            flight = await queue.get()
            # a cancelled delivery stays in _in_flight, for aclose to give up
            self._in_flight[shard] = flight
            try:
                await self._deliver(flight)
            except Exception as exc:
                error = f"{type(exc).__name__}: {self._scrub(str(exc))}"
                log.exception("webhook %s: delivery failed unexpectedly", self.url)
                failure = DeliveryFailure(FAILED, error, flight.attempts)
                await self._hand_to_give_up(flight.event, failure)
            del self._in_flight[shard]
            queue.task_done()

    async def _deliver(self, flight: _Flight) -> None:
        while True:
            flight.attempts += 1
            answer = await self._post(flight.body)
            if answer.error is None:
                self.delivered += 1
                return
            if not answer.retryable:
                failure = DeliveryFailure(REJECTED, answer.error, flight.attempts)
                await self._hand_to_give_up(flight.event, failure)
                return
            if flight.attempts >= self.retry.max_attempts:
                error = f"{answer.error} (after {flight.attempts} attempts)"
                failure = DeliveryFailure(EXHAUSTED, error, flight.attempts)
                await self._hand_to_give_up(flight.event, failure)
                return
            self.retries += 1
            delay = self.retry.delay(flight.attempts, answer.retry_after, self._rand)
            log.debug(
                "webhook %s: attempt %d for %s seq %s failed (%s); retrying in %.2f s",
                self.url,
                flight.attempts,
                flight.event.get("account_id"),
                flight.event.get("seq"),
                answer.error,
                delay,
            )
            await asyncio.sleep(delay)

    async def _post(self, body: bytes) -> _Answer:
        assert self._session is not None  # started by deliver_batch
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.reveal(), timestamp, body),
        }
        try:
            async with self._session.post(
                self._endpoint.reveal().decode(),
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return _Answer(f"no answer within {self.timeout_s:g} s", retryable=True)
        except aiohttp.ClientError as exc:
            return _Answer(f"{type(exc).__name__}: {self._scrub(str(exc))}", retryable=True)
        if 200 <= status < 300:
            return _Answer()
        if status == 429 or status >= 500:
            return _Answer(f"HTTP {status}", retryable=True, retry_after=retry_after)
        return _Answer(f"HTTP {status}", retryable=False)

    def _scrub(self, message: str) -> str:
        """An error message with the full URL (which may hold credentials) replaced."""
        return message.replace(self._endpoint.reveal().decode(), self.url)

    async def _hand_to_give_up(self, event: OutputEvent, failure: DeliveryFailure) -> None:
        self.failed += 1
        self.failures[failure.reason] += 1
        account_id, seq = event.get("account_id"), event.get("seq")
        log.warning(
            "webhook %s: giving up on %s seq %s: %s: %s",
            self.url,
            account_id,
            seq,
            failure.reason,
            failure.error,
        )
        try:
            handled = self.give_up(event, failure)
            if inspect.isawaitable(handled):
                await handled
        except Exception:
            log.exception(
                "webhook %s: the give-up handler failed for %s seq %s", self.url, account_id, seq
            )
