"""The figures as tables: plain text for the terminal, a self-contained HTML page for the browser.

Both are built from the same :class:`Table` values, read from the results that
``quality/results.json`` holds; the page adds two bar charts drawn as inline SVG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Table", "profile_tables", "render_html", "render_text", "summary_text"]

Column = tuple[str, str, str]  # (header, key in the figures, format)

STEADY_COLUMNS: tuple[Column, ...] = (
    ("accounts", "accounts", "count"),
    ("account-months", "account_months", "number"),
    ("alerts", "alerts_per_100_account_months", "number"),
    ("red onsets", "red_onsets_per_100_account_months", "number"),
    ("yellow onsets", "yellow_onsets_per_100_account_months", "number"),
    ("exits from healthy", "exits_from_healthy_per_100_account_months", "number"),
    ("flips <24h", "flips_within_24h_per_100_account_months", "number"),
    ("days flagged", "share_of_days_flagged", "share"),
    ("median score", "median_score", "number"),
)
CHANGE_COLUMNS: tuple[Column, ...] = (
    ("accounts", "accounts", "count"),
    ("flagged at change", "flagged_at_change", "share"),
    ("detected <=21d", "detected_within_21d", "share"),
    ("noted <=21d", "noted_within_21d", "share"),
    ("median delay (d)", "median_delay_days", "number"),
    ("flagged at 8w", "flagged_at_8_weeks", "share"),
    ("flagged at 16w", "flagged_at_16_weeks", "share"),
    ("median score 8w", "median_score_8_weeks", "number"),
    ("median score 16w", "median_score_16_weeks", "number"),
)
#: (header, kind, key, format) of the figures only one kind has
SPECIAL_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("silence: critical <=14d", "silence", "critical_within_14d", "share"),
    ("silence: days to critical", "silence", "median_days_to_critical", "number"),
    ("dip: red or alert", "dip_10d", "red_or_alert", "share"),
    ("dip: yellow finding", "dip_10d", "yellow_finding", "share"),
    ("dip: flagged at 8w", "dip_10d", "flagged_at_8_weeks", "share"),
)
GLOSSARY = (
    ("flagged", "a finding of severity yellow or red, or the zone at risk or critical"),
    ("noted", "any finding (monitor included), or the zone at risk or critical"),
    (
        "steady rates",
        "per 100 account-months (30.44 days) of steady accounts, from day 100 on",
    ),
    ("onset", "a finding reaching yellow (or red) from a lower severity or from nothing"),
    (
        "flip",
        "a finding or override on and off (or off and on) within 24 h, or a zone change"
        " undone within 24 h",
    ),
    ("detected <=21d", "share of accounts flagged at some time in the 21 days from the change"),
    ("flagged at change", "share already flagged when the change began"),
    ("flag onset", "a steady account becoming flagged from not flagged"),
    (
        "reference",
        "Page's CUSUM test for a fall to 30%, told each account's usual daily rate; its"
        " 'detected at those onsets' is the most it detects starting to flag steady accounts"
        " no more often than the profile",
    ),
    ("flagged at 8w / 16w", "share flagged 8 / 16 weeks after the change"),
    ("dip: red or alert", "share with a red finding or an alert within 38 days of a dip's start"),
)


@dataclass(frozen=True)
class Table:
    """A titled grid of formatted cells; the first column names the row."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def cell(value: Any, form: str) -> str:
    if value is None:
        return "-"
    if form == "share":
        return f"{100 * value:.0f}%"
    if form == "count":
        return f"{value:,}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _row(name: str, figures: Mapping[str, Any], columns: Sequence[Column]) -> tuple[str, ...]:
    return (name, *(cell(figures.get(key), form) for _, key, form in columns))


def _volumes(results: Mapping[str, Any]) -> list[str]:
    return [str(v) for v in results["volumes"]]


def steady_table(profile: Mapping[str, Any], volumes: Sequence[str]) -> Table:
    steady = profile["steady"]
    rows = [_row("all volumes", steady["all"], STEADY_COLUMNS)]
    rows += [_row(f"{v}/week", steady["by_volume"][v], STEADY_COLUMNS) for v in volumes]
    return Table(
        "Steady accounts: per 100 account-months, from day 100",
        ("volume", *(c[0] for c in STEADY_COLUMNS)),
        tuple(rows),
    )


def change_table(profile: Mapping[str, Any]) -> Table:
    rows = [_row(kind, cut["all"], CHANGE_COLUMNS) for kind, cut in profile["kinds"].items()]
    return Table(
        "Changed accounts: detection and memory (all volumes)",
        ("kind", *(c[0] for c in CHANGE_COLUMNS)),
        tuple(rows),
    )


def detection_by_volume_table(profile: Mapping[str, Any], volumes: Sequence[str]) -> Table:
    rows = [
        (kind, *(cell(cut["by_volume"][v]["detected_within_21d"], "share") for v in volumes))
        for kind, cut in profile["kinds"].items()
    ]
    return Table(
        "Detected within 21 days, by volume (value actions per week)",
        ("kind", *volumes),
        tuple(rows),
    )


def special_table(profile: Mapping[str, Any], volumes: Sequence[str]) -> Table | None:
    kinds = profile["kinds"]
    columns = [c for c in SPECIAL_COLUMNS if c[1] in kinds]
    if not columns:
        return None
    cuts = [("all volumes", "all"), *((f"{v}/week", v) for v in volumes)]

    def figures(kind: str, cut: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = (
            kinds[kind]["all"] if cut == "all" else kinds[kind]["by_volume"][cut]
        )
        return found

    rows = [
        (name, *(cell(figures(kind, cut).get(key), form) for _, kind, key, form in columns))
        for name, cut in cuts
    ]
    return Table("Silence and dips", ("volume", *(c[0] for c in columns)), tuple(rows))


def known_rate_table(profile: Mapping[str, Any]) -> Table | None:
    """drop_30 within 21 days: the profile beside the known-rate reference test."""
    rows = profile.get("against_known_rate")
    if not rows:
        return None
    return Table(
        "drop_30 within 21 days, beside a test told the usual rate (flag onsets per 100 "
        "steady account-months)",
        (
            "volume",
            "profile: flag onsets",
            "profile: steady days flagged",
            "profile: detected",
            "reference: detected at those onsets",
            "reference: onsets for 90%",
        ),
        tuple(
            (
                f"{volume}/week",
                cell(row["profile_flag_onsets"], "number"),
                cell(row.get("profile_share_of_days_flagged"), "share"),
                cell(row["profile_detected_within_21d"], "share"),
                cell(row["known_rate_detected_at_those_onsets"], "share"),
                cell(row["known_rate_onsets_for_90_percent"], "number"),
            )
            for volume, row in rows.items()
        ),
    )


def profile_tables(results: Mapping[str, Any], name: str) -> list[Table]:
    profile = results["profiles"][name]
    volumes = _volumes(results)
    tables = [steady_table(profile, volumes)]
    if profile["kinds"]:
        tables += [change_table(profile), detection_by_volume_table(profile, volumes)]
    extra = (special_table(profile, volumes), known_rate_table(profile))
    return [*tables, *(t for t in extra if t is not None)]


def comparison_table(results: Mapping[str, Any]) -> Table:
    """The key figures of every profile side by side, one column per profile."""
    figures: list[tuple[str, str | None, str, str]] = [
        ("steady: alerts", None, "alerts_per_100_account_months", "number"),
        ("steady: red onsets", None, "red_onsets_per_100_account_months", "number"),
        ("steady: yellow onsets", None, "yellow_onsets_per_100_account_months", "number"),
        ("steady: exits from healthy", None, "exits_from_healthy_per_100_account_months", "number"),
        ("steady: flips <24h", None, "flips_within_24h_per_100_account_months", "number"),
    ]
    profiles = results["profiles"]
    kinds = list(next(iter(profiles.values()))["kinds"]) if profiles else []
    figures += [(f"{kind}: detected <=21d", kind, "detected_within_21d", "share") for kind in kinds]
    rows = []
    for label, kind, key, form in figures:
        cells = [label]
        for profile in profiles.values():
            cut = profile["steady"]["all"] if kind is None else profile["kinds"][kind]["all"]
            cells.append(cell(cut.get(key), form))
        rows.append(tuple(cells))
    return Table(
        "Profiles side by side (steady rates per 100 account-months)",
        ("figure", *profiles),
        tuple(rows),
    )


def render_text(table: Table) -> str:
    grid = [table.header, *table.rows]
    widths = [max(len(row[i]) for row in grid) for i in range(len(table.header))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    rule = "-" * len(line(table.header))
    return "\n".join((table.title, line(table.header), rule, *(line(r) for r in table.rows)))


def summary_text(results: Mapping[str, Any]) -> str:
    """Everything the page shows, as text, profile by profile."""
    parts = [render_text(comparison_table(results))]
    for name, profile in results["profiles"].items():
        heading = (
            f"== profile {name} (config {profile['config_version']}, "
            f"{profile['outputs']:,} outputs, {profile['seconds']:.0f} s) =="
        )
        parts.append(heading)
        parts += [render_text(t) for t in profile_tables(results, name)]
    return "\n\n".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return (
        f"<h3>{html.escape(table.title)}</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


PALETTE = ("#3366aa", "#dd7733", "#449955", "#aa4466", "#7755aa", "#999933")


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], float | None],
    percent: bool = False,
) -> str:
    """Grouped horizontal bars: one group per row label, one bar per series, as inline SVG."""
    bar, gap, label_w, plot_w = 12, 10, 210, 420
    top = 30
    height = top + len(groups) * (len(series) * bar + gap) + 20 * len(series) + 10
    known = [v for v in values.values() if v is not None]
    scale = 1.0 if percent else max([*known, 1e-9])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 80}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    y = top
    for group in groups:
        parts.append(f'<text x="0" y="{y + bar * len(series) / 2 + 4}">{html.escape(group)}</text>')
        for i, name in enumerate(series):
            value = values.get((group, name))
            width = 0.0 if value is None else plot_w * value / scale
            shown = "-" if value is None else (f"{100 * value:.0f}%" if percent else f"{value:g}")
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar - 2}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{html.escape(name)}: {shown}</title>'
                f"</rect>"
                f'<text x="{label_w + width + 4:.1f}" y="{y + bar - 3}">{shown}</text>'
            )
            y += bar
        y += gap
    for i, name in enumerate(series):
        ly = y + 14 * i + 6
        parts.append(
            f'<rect x="{label_w}" y="{ly}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{label_w + 14}" y="{ly + 9}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def charts(results: Mapping[str, Any]) -> list[str]:
    profiles = results["profiles"]
    names = list(profiles)
    rates = (
        ("alerts", "alerts_per_100_account_months"),
        ("red onsets", "red_onsets_per_100_account_months"),
        ("yellow onsets", "yellow_onsets_per_100_account_months"),
        ("exits from healthy", "exits_from_healthy_per_100_account_months"),
    )
    steady = {
        (label, name): profiles[name]["steady"]["all"][key]
        for label, key in rates
        for name in names
    }
    out = [
        bar_chart("Steady accounts: per 100 account-months", [r[0] for r in rates], names, steady)
    ]
    kinds = list(profiles[names[0]]["kinds"]) if names else []
    if kinds:
        detected = {
            (kind, name): profiles[name]["kinds"][kind]["all"]["detected_within_21d"]
            for kind in kinds
            for name in names
        }
        out.append(bar_chart("Detected within 21 days", kinds, names, detected, percent=True))
    frontier = frontier_chart(results)
    return out if frontier is None else [*out, frontier]


def frontier_chart(results: Mapping[str, Any], most_onsets: float = 60.0) -> str | None:
    """The reference test's detection of drop_30 against its steady flag onsets, one line per
    volume, with each profile's own figures as dots of the volume's colour."""
    known = results.get("known_rate")
    if not known:
        return None
    left, top, width, height = 50, 30, 480, 240
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 130}" '
        f'height="{top + height + 40}" font-family="sans-serif" font-size="11">',
        '<text x="0" y="16" font-size="13" font-weight="bold">drop_30 detected within 21 days '
        "against flag onsets per 100 steady account-months</text>",
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
    ]

    def xy(onsets: float, share: float) -> tuple[float, float]:
        return left + width * min(onsets, most_onsets) / most_onsets, top + height * (1 - share)

    for tick in range(0, 101, 25):
        _, y = xy(0, tick / 100)
        parts.append(f'<text x="{left - 30}" y="{y + 4:.0f}">{tick}%</text>')
    for tick in range(0, int(most_onsets) + 1, 10):
        x, _ = xy(tick, 0)
        parts.append(f'<text x="{x - 4:.0f}" y="{top + height + 14}">{tick}</text>')
    for i, (volume, cut) in enumerate(known["by_volume"].items()):
        colour = PALETTE[i % len(PALETTE)]
        points = sorted(
            (p["steady_onsets_per_100_account_months"], p["detected_within_21d"])
            for p in cut["points"]
        )
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(o, d) for o, d in points))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}"/>')
        parts.append(
            f'<text x="{left + width + 10}" y="{top + 14 * i + 10}" fill="{colour}">'
            f"{html.escape(volume)}/week</text>"
        )
        for name, profile in results["profiles"].items():
            row = profile.get("against_known_rate", {}).get(volume)
            if row is None or row["profile_detected_within_21d"] is None:
                continue
            x, y = xy(row["profile_flag_onsets"], row["profile_detected_within_21d"])
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>'
                f"{html.escape(name)} at {html.escape(volume)}/week</title></circle>"
            )
    parts.append(
        f'<text x="{left}" y="{top + height + 32}">lines: the reference test at each threshold; '
        f"dots: the profiles (onsets past {most_onsets:.0f} drawn at the edge)</text></svg>"
    )
    return "".join(parts)


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
dt { font-weight: bold; } dd { margin: 0 0 0.4em 1.5em; }
"""


def render_html(results: Mapping[str, Any]) -> str:
    """One self-contained page: settings, charts, comparison, and each profile's tables."""
    settings = results["generator"]
    facts = (
        f"seed {results['seed']}, {results['days']} days from {settings['start']}, "
        f"volumes {', '.join(_volumes(results))} value actions a week, "
        f"{results['replicates']['steady']} steady accounts and "
        f"{results['replicates']['changed']} per change kind for each volume, "
        f"{results['records']:,} records"
    )
    glossary = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in GLOSSARY
    )
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>healthstream model quality</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>healthstream model quality</h1>",
        f"<p>{html.escape(facts)}</p>",
        *(f"<div>{chart}</div>" for chart in charts(results)),
        _html_table(comparison_table(results)),
        f"<h2>Terms</h2><dl>{glossary}</dl>",
    ]
    for name, profile in results["profiles"].items():
        sections.append(
            f"<h2>Profile {html.escape(name)}</h2><p>config {profile['config_version']}, "
            f"{profile['outputs']:,} outputs, scored in {profile['seconds']:.0f} s</p>"
        )
        sections += [_html_table(t) for t in profile_tables(results, name)]
    sections.append("</body></html>")
    return "\n".join(sections)
