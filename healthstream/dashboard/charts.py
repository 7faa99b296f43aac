"""Charts as inline SVG, drawn on the server: no script and no chart library.

A score holds from one output to the next, so both charts draw steps. Times are the
outputs' ``event_time``; an output for an event that came in late can carry an earlier
time than the one before it, so the x of each step is the latest time seen so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from healthstream.dashboard.book import ZONE_LABELS, ScorePoint
from healthstream.dashboard.markup import Markup, join, render


def parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _steps(
    points: Sequence[tuple[str, int]], start: datetime, end: datetime
) -> list[tuple[float, int]]:
    """(seconds from ``start``, score) per (time, score), times never going back, within
    the span."""
    steps: list[tuple[float, int]] = []
    latest = start
    for time, score in points:
        t = parse(time)
        if t is None:
            continue
        latest = min(max(latest, t), end)
        steps.append(((latest - start).total_seconds(), score))
    return steps


def _path(
    steps: list[tuple[float, int]],
    span: float,
    x0: float,
    width: float,
    y: Callable[[float], float],
) -> str:
    parts: list[str] = []
    for i, (t, score) in enumerate(steps):
        x = x0 + width * t / span
        if i == 0:
            parts.append(f"M{x:.1f},{y(score):.1f}")
        else:
            parts.append(f"H{x:.1f}V{y(score):.1f}")
    if steps:
        parts.append(f"H{x0 + width:.1f}")
    return "".join(parts)


def sparkline(
    points: Sequence[tuple[str, int]],
    start: datetime,
    end: datetime,
    width: int = 120,
    height: int = 28,
) -> Markup:
    """The score from ``start`` to ``end`` as a small line, 0 at the bottom and 100 at the top."""
    span = max((end - start).total_seconds(), 1.0)
    steps = _steps(points, start, end)
    if not steps:
        return render('<span class="muted">no score in 90 days</span>')
    pad = 2.0

    def y(score: float) -> float:
        return pad + (height - 2 * pad) * (1 - max(0, min(score, 100)) / 100)

    first, last = steps[0][1], steps[-1][1]
    low = min(s for _, s in steps)
    label = f"score over 90 days: {first} to {last}, lowest {low}"
    return render(
        '<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"'
        ' aria-label="{label}"><title>{label}</title>'
        '<line class="spark-mid" x1="0" x2="{w}" y1="{mid}" y2="{mid}"/>'
        '<path class="spark-line" d="{d}"/>'
        '<circle class="spark-end" cx="{w_end}" cy="{y_end}" r="2"/></svg>',
        w=width,
        h=height,
        label=label,
        mid=f"{y(50):.1f}",
        d=_path(steps, span, 0.0, float(width), y),
        w_end=f"{width - 2}",
        y_end=f"{y(last):.1f}",
    )


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where the score chart's plot sits in its SVG, and its time span."""

    start: datetime
    end: datetime
    width: int
    height: int
    left: float = 36.0
    right: float = 8.0
    top: float = 14.0
    bottom: float = 24.0

    @property
    def span(self) -> float:
        return max((self.end - self.start).total_seconds(), 1.0)

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, score: float) -> float:
        return self.top + self.plot_h * (1 - max(0.0, min(score, 100.0)) / 100)


def _band_rects(frame: _Frame, bands: tuple[float, float]) -> Markup:
    at_risk, healthy = bands
    y = frame.y
    return join(
        render(
            '<rect class="band band-{zone}" x="{x}" y="{y}" width="{w}" height="{h}">'
            "<title>{label}: {low} to {high}</title></rect>"
            '<text class="band-label" x="{tx}" y="{ty}">{label}</text>',
            zone=zone,
            x=f"{frame.left:.1f}",
            y=f"{y(high):.1f}",
            w=f"{frame.plot_w:.1f}",
            h=f"{y(low) - y(high):.1f}",
            label=ZONE_LABELS[zone],
            low=f"{low:g}",
            high=f"{high:g}",
            tx=f"{frame.left + 4:.1f}",
            ty=f"{y(high) + 11:.1f}",
        )
        for zone, low, high in (
            ("healthy", healthy, 100.0),
            ("at_risk", at_risk, healthy),
            ("critical", 0.0, at_risk),
        )
        if high > low
    )


def _ticks(frame: _Frame, bands: tuple[float, float]) -> tuple[Markup, Markup]:
    """The score axis' labels (0, the band edges, 100) and three dates along the time axis."""
    y_ticks = join(
        render(
            '<text class="tick" x="{x}" y="{y}">{v}</text>',
            x=f"{frame.left - 6:.1f}",
            y=f"{frame.y(v) + 4:.1f}",
            v=f"{v:g}",
        )
        for v in sorted({0.0, *bands, 100.0})
    )
    x_ticks = join(
        render(
            '<text class="tick tick-x-{anchor}" x="{x}" y="{y}">{label}</text>',
            anchor=anchor,
            x=f"{frame.left + frame.plot_w * f:.1f}",
            y=f"{frame.height - 6:.1f}",
            label=(frame.start + (frame.end - frame.start) * f).strftime("%Y-%m-%d"),
        )
        for f, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end"))
    )
    return y_ticks, x_ticks


def _dots(frame: _Frame, points: Sequence[ScorePoint], steps: list[tuple[float, int]]) -> Markup:
    """A dot with its time and score per point, left out above 400 points."""
    if len(points) > 400:
        return Markup("")
    return Markup(
        join(
            render(
                '<circle class="dot" cx="{x}" cy="{y}" r="3"><title>{label}</title></circle>',
                x=f"{frame.left + frame.plot_w * t / frame.span:.1f}",
                y=f"{frame.y(score):.1f}",
                label=f"{p.time[:16].replace('T', ' ')}: {score}"
                + (f" ({ZONE_LABELS.get(p.zone, p.zone)})" if p.zone else ""),
            )
            for (t, score), p in zip(steps, [p for p in points if parse(p.time)], strict=True)
        )
    )


def _alert_marks(frame: _Frame, alerts: Sequence[tuple[str, str]]) -> Markup:
    marks = []
    for when, label in alerts:
        t = parse(when)
        if t is None:
            continue
        seconds = min(max((t - frame.start).total_seconds(), 0.0), frame.span)
        x = frame.left + frame.plot_w * seconds / frame.span
        marks.append(
            render(
                '<path class="alert-mark" d="M{x0},{y0}L{x1},{y0}L{x},{y1}Z">'
                "<title>alert: {label}</title></path>",
                x0=f"{x - 5:.1f}",
                x1=f"{x + 5:.1f}",
                x=f"{x:.1f}",
                y0=f"{frame.top - 12:.1f}",
                y1=f"{frame.top - 3:.1f}",
                label=label,
            )
        )
    return join(marks)


def score_chart(
    points: Sequence[ScorePoint],
    end: datetime | None,
    bands: tuple[float, float],
    alerts: Sequence[tuple[str, str]] = (),
    width: int = 800,
    height: int = 240,
) -> Markup:
    """The score over time on the zone bands (critical below ``bands[0]``, healthy from
    ``bands[1]``), with a marker for each alert ((time, label) pairs)."""
    times = [t for t in (parse(p.time) for p in points) if t is not None]
    if not times:
        return render('<p class="muted">No score in the history yet.</p>')
    start = min(times)
    end = max([*times, *([end] if end is not None else [])])
    frame = _Frame(start, end, width, height)
    y_ticks, x_ticks = _ticks(frame, bands)
    steps = _steps([(p.time, p.score) for p in points], start, end)
    last = steps[-1][1] if steps else None
    summary = (
        f"score from {start:%Y-%m-%d} to {end:%Y-%m-%d}: "
        f"{steps[0][1] if steps else '-'} to {last}, lowest {min(s for _, s in steps)}, "
        f"highest {max(s for _, s in steps)}"
    )
    return render(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{summary}">'
        "<title>{summary}</title>{bands}{yt}{xt}"
        '<path class="score-line" d="{d}"/>{dots}{marks}</svg>',
        w=width,
        h=height,
        summary=summary,
        bands=_band_rects(frame, bands),
        yt=y_ticks,
        xt=x_ticks,
        d=_path(steps, frame.span, frame.left, frame.plot_w, frame.y),
        dots=_dots(frame, points, steps),
        marks=_alert_marks(frame, alerts),
    )
