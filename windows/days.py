"""Day numbers (days since 1970-01-01, UTC) as the dates that outputs and evidence name."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

_EPOCH = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number; outputs name few days, so each is formatted once."""
    return date.fromordinal(day + _EPOCH).isoformat()
