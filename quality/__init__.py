"""Model quality: synthetic accounts with a known change, scored by the real core, measured.

``generator`` draws the telemetry, ``measure`` turns the outputs into figures (false alarms
on steady accounts, detection and memory of declines), ``report`` writes them out and
``run`` is ``make quality``.
"""
