"""Destinations for output events, behind two small contracts: ``Sink`` and ``AsyncSink``.

See docs/sinks.md for which to use where and how the webhook signs its requests.
"""

from sinks.adapters import BlockingSink, ThreadedSink
from sinks.base import AsyncSink, FanOutSink, JsonlFileSink, JsonlSink, MemorySink, Sink
from sinks.history import HistoryEntry, HistoryError, ScoreHistory
from sinks.webhook import DeliveryFailure, RetryPolicy, WebhookSink, verify_signature

__all__ = [
    "AsyncSink",
    "BlockingSink",
    "DeliveryFailure",
    "FanOutSink",
    "HistoryEntry",
    "HistoryError",
    "JsonlFileSink",
    "JsonlSink",
    "MemorySink",
    "RetryPolicy",
    "ScoreHistory",
    "Sink",
    "ThreadedSink",
    "WebhookSink",
    "verify_signature",
]
