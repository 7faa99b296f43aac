"""Destinations for output events, each behind the one ``Sink`` interface."""

from sinks.base import JsonlSink, MemorySink, Sink

__all__ = ["JsonlSink", "MemorySink", "Sink"]
