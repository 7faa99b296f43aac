"""Per-account rolling windows of daily buckets: the pure, typed state core."""
