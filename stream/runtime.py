"""How the interpreter is set up for long runs over many accounts: the garbage collector.

An account's state is a few dozen long-lived container objects (its series, their window
sums, its features, users and caches) with no reference cycles among them: reference
counting frees what an event leaves behind. CPython's default thresholds (700, 10, 10)
still make the cyclic collector walk every tracked object again and again as the book
grows: on 100,000 accounts that was 28% of ``replay``'s time, for nothing collected.

With these thresholds a young collection comes every 50,000 net allocations instead of
700 and a full one far more rarely, so the walks stop mattering. The collector still
runs: cycles that asyncio, Faust or aiokafka leave are still found, young ones at once.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Set the collector's thresholds for a worker or a replay (see the module's text)."""
    gc.set_threshold(*thresholds)
