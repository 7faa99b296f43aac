"""The HTML pages, rendered on the server from the same objects the JSON API returns.

No script: sorting, filtering and paging are links and a GET form. Every value that comes
from the history goes through ``markup.render``, which escapes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from healthstream.dashboard.book import (
    SEVERITIES,
    ZONE_LABELS,
    ZONES,
    AccountPage,
    AlertsPage,
    BookPage,
    BookQuery,
    BookRow,
)
from healthstream.dashboard.charts import parse, score_chart, sparkline
from healthstream.dashboard.markup import Markup, account_href, esc, href, join, render
from healthstream.dashboard.store import SPARK_DAYS

#: the book's columns: (sort key or "", heading, what the heading's title says)
COLUMNS = (
    ("account", "Account", "account id"),
    ("score", "Score", "0 to 100"),
    ("zone", "Zone", "worst first"),
    ("change_7d", "7 days", "score change over the last 7 days"),
    ("change_30d", "30 days", "score change over the last 30 days"),
    ("", "90 days", "the score over the last 90 days"),
    ("reason", "Main reason", "what moved the score most at its last change"),
    ("action", "Recommended action", ""),
    ("changed", "Changed", "when the score last changed"),
)


def when(text: str | None) -> str:
    """An output's time as a reader wants it: ``2026-03-14 09:30 UTC``."""
    t = parse(text)
    if t is None:
        return text or "-"
    return f"{t:%Y-%m-%d %H:%M} UTC" if t.utcoffset() == timedelta(0) else f"{t:%Y-%m-%d %H:%M %z}"


def day(text: str | None) -> str:
    t = parse(text)
    return f"{t:%Y-%m-%d}" if t is not None else (text or "-")


def zone_badge(zone: str | None) -> Markup:
    if zone is None:
        return render('<span class="zone zone-none">no zone</span>')
    known = zone if zone in ZONE_LABELS else "other"
    return render(
        '<span class="zone zone-{known}">{label}</span>',
        known=known,
        label=ZONE_LABELS.get(zone, zone),
    )


def severity_badge(severity: str | None) -> Markup:
    known = severity if severity in SEVERITIES else "other"
    return render('<span class="sev sev-{k}">{s}</span>', k=known, s=severity or "-")


def change(value: int | None) -> Markup:
    if value is None:
        return render('<span class="muted" title="no score that long ago">new</span>')
    if value == 0:
        return render('<span class="delta flat">0</span>')
    arrow, kind = ("▲", "up") if value > 0 else ("▼", "down")
    return render(
        '<span class="delta {kind}">{arrow} {v}</span>', kind=kind, arrow=arrow, v=f"{value:+d}"
    )


def layout(title: str, body: Markup, store: str, as_of: str | None = None) -> Markup:
    stamp = render(' <span class="as-of">as of {t}</span>', t=when(as_of)) if as_of else ""
    return render(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} · healthstream</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css">'
        "</head><body>"
        '<header class="top"><a class="brand" href="/">healthstream</a>'
        '<nav><a href="/">Book</a> <a href="/alerts">Alerts</a></nav>{stamp}</header>'
        '<main id="main">{body}</main>'
        "<footer>Read-only view of {store}. The same data as JSON: "
        '<a href="/api/book">/api/book</a>, <a href="/api/alerts">/api/alerts</a>.</footer>'
        "</body></html>\n",
        title=title,
        stamp=Markup(stamp),
        body=body,
        store=store,
    )


# -- the book --------------------------------------------------------------------------------


def book_page(page: BookPage, store: str) -> Markup:
    q = page.query
    return layout(
        "The book",
        join(
            [
                render("<h1>The book</h1>"),
                _zone_counts(page),
                _book_filters(page),
                _book_table(page),
                _pager(page.query.page, page.pages, page.total, q.per, lambda n: q.params(page=n)),
            ]
        ),
        store,
        page.as_of,
    )


def _zone_counts(page: BookPage) -> Markup:
    q = page.query
    everyone = sum(page.zones.values())
    chips = [
        render(
            '<li><a class="chip chip-all" href="{h}"{cur}>all <b>{n}</b></a></li>',
            h=href("/", q.params(zone=None, page=1)),
            cur=Markup(' aria-current="true"' if q.zone is None else ""),
            n=f"{everyone:,}",
        )
    ]
    for zone in ZONES:
        chips.append(
            render(
                '<li><a class="chip zone-{z}" href="{h}"{cur} data-zone="{z}">{label} '
                '<b class="count">{n}</b></a></li>',
                z=zone,
                h=href("/", q.params(zone=zone, page=1)),
                cur=Markup(' aria-current="true"' if q.zone == zone else ""),
                label=ZONE_LABELS[zone],
                n=f"{page.zones.get(zone, 0):,}",
            )
        )
    return render(
        '<section aria-label="accounts per zone"><ul class="zones">{chips}</ul></section>',
        chips=join(chips),
    )


def _options(values: Iterable[tuple[str, str]], chosen: str | None) -> Markup:
    return join(
        render(
            '<option value="{v}"{sel}>{label}</option>',
            v=v,
            sel=Markup(" selected" if v == (chosen or "") else ""),
            label=label,
        )
        for v, label in values
    )


def _book_filters(page: BookPage) -> Markup:
    q = page.query
    segment = ""
    if page.segments or q.segment:
        segments = sorted({*page.segments, *([q.segment] if q.segment else [])})
        segment = render(
            '<label>Segment <select name="segment">{o}</select></label>',
            o=_options([("", "any"), *((s, s) for s in segments)], q.segment),
        )
    sorts = [("risk", "risk"), *((k, h.lower()) for k, h, _ in COLUMNS if k)]
    return render(
        '<form class="filters" method="get" action="/" role="search">'
        '<label>Zone <select name="zone">{zones}</select></label>{segment}'
        '<label>Account <input type="search" name="q" value="{search}" maxlength="200"'
        ' placeholder="account id contains"></label>'
        '<label>Sort by <select name="sort">{sorts}</select></label>'
        '<label>Order <select name="order">{orders}</select></label>'
        '<button type="submit">Show</button> <a href="/">clear</a></form>',
        zones=_options([("", "any"), *((z, ZONE_LABELS[z]) for z in ZONES)], q.zone),
        segment=Markup(segment),
        search=q.search,
        sorts=_options(sorts, q.sort),
        orders=_options([("asc", "ascending"), ("desc", "descending")], q.order),
    )


def _sort_link(q: BookQuery, key: str, heading: str, title: str) -> Markup:
    if not key:
        return render('<th scope="col" title="{t}">{h}</th>', t=title, h=heading)
    active = q.sort == key
    order = "desc" if active and q.order == "asc" else "asc"
    aria = ""
    if active:
        aria = ' aria-sort="ascending"' if q.order == "asc" else ' aria-sort="descending"'
    arrow = ("↑" if q.order == "asc" else "↓") if active else ""
    return render(
        '<th scope="col"{aria}><a href="{h}" title="sort by {t}">{heading}{arrow}</a></th>',
        aria=Markup(aria),
        h=href("/", q.params(sort=key, order=order, page=1)),
        t=title or heading.lower(),
        heading=heading,
        arrow=arrow,
    )


def _book_table(page: BookPage) -> Markup:
    q = page.query
    if not page.accounts:
        return render('<p class="empty">No account matches these filters.</p>')
    end = parse(page.as_of)
    heads = join(_sort_link(q, k, h, t) for k, h, t in COLUMNS)
    risk_note = (
        "Sorted by risk: lowest score first, then the biggest fall over 7 days."
        if q.sort == "risk"
        else ""
    )
    rows = join(_book_row(r, end) for r in page.accounts)
    if not (q.sort == "risk" and q.order == "asc"):
        risk_note = render(
            '<a href="{h}">Sort by risk</a> (lowest score first, then the biggest fall).',
            h=href("/", q.params(sort="risk", order="asc", page=1)),
        )
    return render(
        '<p class="sort-note">{note}</p><table class="book">'
        "<thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>",
        note=risk_note,
        heads=heads,
        rows=rows,
    )


def _book_row(r: BookRow, end: Any) -> Markup:
    spark = (
        sparkline(r.sparkline, end - timedelta(days=SPARK_DAYS), end)
        if end is not None
        else Markup("")
    )
    return render(
        '<tr data-account="{a}">'
        '<td data-label="Account" class="account"><a href="{h}">{a}</a></td>'
        '<td data-label="Score" class="num score">{score}</td>'
        '<td data-label="Zone">{zone}</td>'
        '<td data-label="7 days" class="num">{d7}</td>'
        '<td data-label="30 days" class="num">{d30}</td>'
        '<td data-label="90 days">{spark}</td>'
        '<td data-label="Main reason" class="reason">{reason}</td>'
        '<td data-label="Action" class="action">{action}</td>'
        '<td data-label="Changed" class="when">{changed}</td></tr>',
        a=r.account_id,
        h=account_href(r.account_id),
        score="-" if r.score is None else r.score,
        zone=zone_badge(r.zone),
        d7=change(r.change_7d),
        d30=change(r.change_30d),
        spark=spark,
        reason=r.reason or "-",
        action=r.action or "-",
        changed=day(r.changed_at),
    )


def _pager(page: int, pages: int, total: int, per: int, params: Any, path: str = "/") -> Markup:
    first = (page - 1) * per + 1
    last = min(page * per, total)
    shown = f"{first:,}–{last:,} of {total:,}" if first <= last else f"none of {total:,}"
    links = []
    for label, n, rel in (
        ("« first", 1, "first"),
        ("‹ previous", min(page - 1, pages), "prev"),
        ("next ›", page + 1, "next"),
        ("last »", pages, "last"),
    ):
        if 1 <= n <= pages and n != page:
            links.append(
                render(
                    '<a href="{h}" rel="{rel}">{l}</a>', h=href(path, params(n)), rel=rel, l=label
                )
            )
        else:
            links.append(render('<span class="muted">{l}</span>', l=label))
    return render(
        '<nav class="pager" aria-label="pages"><span>{shown} · page {page} of {pages}</span>'
        " {links}</nav>",
        shown=shown,
        page=f"{page:,}",
        pages=f"{pages:,}",
        links=join(links, " "),
    )


# -- an account ------------------------------------------------------------------------------


def account_page(
    account: AccountPage, store: str, bands: tuple[float, float], as_of: str | None
) -> Markup:
    a = account
    f = a.facts
    facts = [("Segment", f.segment or "not given")]
    if f.renewal_date:
        days = (
            f" ({f.days_to_renewal} days from {f.renewal_seen})"
            if f.days_to_renewal is not None
            else ""
        )
        facts.append(("Renewal date", f"{f.renewal_date}{days}"))
    else:
        facts.append(("Renewal date", "not in its recent outputs"))
    if f.champion_status:
        who = f.champion or "the champion"
        seen = f", last seen {f.champion_last_seen}" if f.champion_last_seen else ""
        facts.append(("Champion", f"{who}: {f.champion_status}{seen} (as of {f.champion_seen})"))
    else:
        facts.append(("Champion", "not in its recent outputs"))
    facts.append(("Newest output", f"{when(a.event_time)} (seq {a.seq})"))
    alert_marks = [
        (str(x.get("event_time") or ""), f"{x.get('alert')} ({x.get('severity')})")
        for x in a.alerts
    ]
    body = join(
        [
            render(
                '<p class="crumbs"><a href="/">The book</a> › account</p>'
                '<h1 class="account-id">{a}</h1>'
                '<section class="standing" aria-label="standing">'
                '<p class="big-score"><span class="score">{score}</span> {zone}</p>'
                "<p><b>Main reason:</b> {reason}</p><p><b>Recommended action:</b> {action}</p>"
                "<p><b>Score last changed:</b> {changed}</p>"
                '<dl class="facts">{facts}</dl></section>',
                a=a.account_id,
                score="-" if a.score is None else a.score,
                zone=zone_badge(a.zone),
                reason=a.reason or "-",
                action=a.action or "-",
                changed=when(a.changed_at),
                facts=join(render("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in facts),
            ),
            render(
                '<section aria-label="score over time"><h2>Score over time</h2>'
                '<figure class="chart-box">{chart}<figcaption>Zone bands: critical below {r},'
                " at risk from {r}, healthy from {h}. Triangles mark alerts.</figcaption>"
                "</figure></section>",
                chart=score_chart(a.scores, parse(as_of), bands, alert_marks),
                r=f"{bands[0]:g}",
                h=f"{bands[1]:g}",
            ),
            _account_alerts(a.alerts),
            _changes(a),
        ]
    )
    return layout(a.account_id, body, store, as_of)


def _account_alerts(alerts: list[dict[str, Any]]) -> Markup:
    if not alerts:
        return render('<section><h2>Alerts</h2><p class="muted">No alerts.</p></section>')
    rows = join(
        render(
            '<tr><td data-label="When" class="when">{t}</td><td data-label="Alert">{alert}</td>'
            '<td data-label="Severity">{sev}</td><td data-label="Score" class="num">{score}</td>'
            '<td data-label="Action">{action}</td><td data-label="Evidence">{ev}</td></tr>',
            t=when(x.get("event_time")),
            alert=x.get("alert") or "-",
            sev=severity_badge(x.get("severity")),
            score=x.get("score", "-"),
            action=x.get("action") or "-",
            ev=evidence(x.get("evidence")),
        )
        for x in alerts
    )
    return render(
        '<section id="alerts"><h2>Alerts</h2><table class="rows"><thead><tr><th>When</th>'
        "<th>Alert</th><th>Severity</th><th>Score</th><th>Action</th><th>Evidence</th></tr>"
        "</thead><tbody>{rows}</tbody></table></section>",
        rows=rows,
    )


def _changes(a: AccountPage) -> Markup:
    rows = join(_change_row(c) for c in a.changes)
    older = ""
    if a.older is not None:
        older = render(
            '<p class="pager"><a href="{h}" rel="next">older outputs ›</a></p>',
            h=href(account_href(a.account_id), {"before": str(a.older)}),
        )
    return render(
        '<section id="changes"><h2>Every change</h2>'
        '<table class="rows changes"><thead><tr><th>When</th><th>Score</th><th>Zone</th>'
        "<th>What moved it</th><th>Detectors and overrides</th><th>Action and playbook</th>"
        "</tr></thead><tbody>{rows}</tbody></table>{older}</section>",
        rows=rows,
        older=Markup(older),
    )


def _change_row(c: Mapping[str, Any]) -> Markup:
    kind = c.get("kind")
    score, previous = c.get("score"), c.get("previous_score")
    if kind == "score_changed" and isinstance(score, int) and isinstance(previous, int):
        moved = render("{p} → <b>{s}</b> ({d})", p=previous, s=score, d=f"{score - previous:+d}")
    else:
        moved = render("<b>{s}</b>", s="-" if score is None else score)
    zone = zone_badge(c.get("zone"))
    if kind == "score_changed" and c.get("previous_zone") not in (None, c.get("zone")):
        zone = render("{p} → {z}", p=zone_badge(c.get("previous_zone")), z=zone)
    return render(
        '<tr data-seq="{seq}" data-kind="{kind}"><td data-label="When" class="when">{t}'
        '<br><span class="muted">{kind_label}</span></td>'
        '<td data-label="Score" class="num">{moved}</td><td data-label="Zone">{zone}</td>'
        '<td data-label="What moved it">{signals}</td>'
        '<td data-label="Detectors and overrides">{findings}</td>'
        '<td data-label="Action and playbook">{action}</td></tr>',
        seq=c.get("seq", ""),
        kind=kind or "",
        t=when(c.get("event_time")),
        kind_label=(kind or "").replace("_", " "),
        moved=moved,
        zone=zone,
        signals=_signals(c),
        findings=_findings(c),
        action=_action(c),
    )


def _signals(c: Mapping[str, Any]) -> Markup:
    if c.get("kind") == "override_cleared":
        return render(
            "override <b>{o}</b> ended: {r}", o=c.get("override") or "-", r=c.get("reason") or "-"
        )
    if c.get("kind") == "override_applied":
        return render(
            "override <b>{o}</b> began: {e} {v}",
            o=c.get("override") or "-",
            e=c.get("effect") or "",
            v="" if c.get("value") is None else c.get("value"),
        )
    signals = c.get("signals") or []
    if not signals:
        first = c.get("kind") == "score_changed" and c.get("previous_score") is None
        return render('<span class="muted">{t}</span>', t="first score" if first else "-")
    items = join(
        render(
            '<li><b>{name}</b> {prev} → {score} <span class="delta {dir}">({delta})</span>'
            ' <span class="muted">impact {impact} points</span>{ev}</li>',
            name=s.get("signal") or "-",
            prev="-" if s.get("previous") is None else s.get("previous"),
            score="-" if s.get("score") is None else s.get("score"),
            dir="down" if (s.get("delta") or 0) < 0 else "up",
            delta=f"{s['delta']:+d}" if isinstance(s.get("delta"), int) else "-",
            impact=f"{s['impact']:+g}" if isinstance(s.get("impact"), int | float) else "-",
            ev=evidence(s.get("evidence")),
        )
        for s in signals
    )
    return render('<ul class="moved">{items}</ul>', items=items)


def _findings(c: Mapping[str, Any]) -> Markup:
    items: list[Markup] = []
    for f in c.get("detectors") or []:
        series = f.get("series")
        items.append(
            render(
                '<li class="finding">{sev} <b>{d}</b>{on}: {action}{ev}</li>',
                sev=severity_badge(f.get("severity")),
                d=f.get("detector") or "-",
                on=f" on {series}" if series else "",
                action=f.get("action") or "",
                ev=evidence(f.get("evidence")),
            )
        )
    overrides = list(c.get("overrides") or [])
    if c.get("kind") == "override_applied":
        overrides.append(c)
    for o in overrides:
        value = o.get("value")
        items.append(
            render(
                '<li class="override">{sev} override <b>{name}</b>: {effect}{value}{before}'
                "{ev}</li>",
                sev=severity_badge(o.get("severity")),
                name=o.get("override") or "-",
                effect=o.get("effect") or "",
                value="" if value is None else f" {value}",
                before=""
                if o.get("score_before") is None
                else f" (score before: {o.get('score_before')})",
                ev=evidence(o.get("evidence")),
            )
        )
    if not items:
        return render('<span class="muted">none</span>')
    return render('<ul class="findings">{items}</ul>', items=join(items))


def _action(c: Mapping[str, Any]) -> Markup:
    playbook = c.get("playbook") if isinstance(c.get("playbook"), Mapping) else None
    book = ""
    if playbook:
        actions = playbook.get("actions") if isinstance(playbook.get("actions"), list) else []
        book = render(
            "<details><summary>playbook: {zone}</summary><p>{cadence}; owner {owner}, "
            "escalate to {esc}</p><ol>{actions}</ol></details>",
            zone=ZONE_LABELS.get(str(playbook.get("zone")), playbook.get("zone") or "-"),
            cadence=playbook.get("cadence") or "-",
            owner=playbook.get("owner") or "-",
            esc=playbook.get("escalate_to") or "-",
            actions=join(render("<li>{a}</li>", a=x) for x in actions),
        )
    return render("{action}{book}", action=c.get("recommended_action") or "-", book=Markup(book))


def evidence(value: Any) -> Markup:
    """Evidence as a definition list under a closed ``details`` (opens without script)."""
    if not isinstance(value, Mapping) or not value:
        return Markup("")
    return render(
        '<details class="evidence"><summary>evidence</summary>{dl}</details>', dl=_dl(value)
    )


def _dl(value: Mapping[str, Any], depth: int = 0) -> Markup:
    items = []
    for k, v in value.items():
        items.append(render("<dt>{k}</dt><dd>{v}</dd>", k=k, v=_value(v, depth)))
    return render("<dl>{items}</dl>", items=join(items))


def _value(v: Any, depth: int) -> Markup:
    if isinstance(v, Mapping):
        return _dl(v, depth + 1) if depth < 4 and v else esc(str(v) if v else "-")
    if isinstance(v, list):
        if not v:
            return esc("none")
        if all(not isinstance(x, Mapping | list) for x in v):
            return esc(", ".join(str(x) for x in v))
        return render(
            "<ol>{i}</ol>", i=join(render("<li>{x}</li>", x=_value(x, depth + 1)) for x in v)
        )
    if v is None:
        return esc("-")
    if isinstance(v, bool):
        return esc("yes" if v else "no")
    return esc(v)


# -- alerts ----------------------------------------------------------------------------------


def alerts_page(page: AlertsPage, store: str, as_of: str | None) -> Markup:
    q = page.query
    chips = [
        render(
            '<li><a class="chip chip-all" href="/alerts"{cur}>all <b>{n}</b></a></li>',
            cur=Markup(' aria-current="true"' if q.severity is None and q.alert is None else ""),
            n=f"{sum(c.count for c in page.counts):,}",
        )
    ]
    for c in page.counts:
        params = {k: v for k, v in (("severity", c.severity), ("alert", c.alert)) if v}
        chips.append(
            render(
                '<li><a class="chip" href="{h}"{cur}>{sev} {alert} <b>{n}</b></a></li>',
                h=href("/alerts", params),
                cur=Markup(
                    ' aria-current="true"' if (q.severity, q.alert) == (c.severity, c.alert) else ""
                ),
                sev=severity_badge(c.severity),
                alert=c.alert or "-",
                n=f"{c.count:,}",
            )
        )
    severities = sorted({c.severity for c in page.counts if c.severity})
    kinds = sorted({c.alert for c in page.counts if c.alert})
    form = render(
        '<form class="filters" method="get" action="/alerts">'
        '<label>Severity <select name="severity">{sev}</select></label>'
        '<label>Alert <select name="alert">{kinds}</select></label>'
        '<button type="submit">Filter</button> <a href="/alerts">clear</a></form>',
        sev=_options([("", "any"), *((s, s) for s in severities)], q.severity),
        kinds=_options([("", "any"), *((k, k) for k in kinds)], q.alert),
    )
    if page.alerts:
        rows = join(
            render(
                '<tr><td data-label="When" class="when">{t}</td>'
                '<td data-label="Account" class="account"><a href="{h}">{a}</a></td>'
                '<td data-label="Alert">{alert}</td><td data-label="Severity">{sev}</td>'
                '<td data-label="Score" class="num">{score}</td><td data-label="Zone">{zone}</td>'
                '<td data-label="Action">{action}</td><td data-label="Evidence">{ev}</td></tr>',
                t=when(x.get("event_time")),
                h=account_href(str(x.get("account_id", ""))),
                a=x.get("account_id", "-"),
                alert=x.get("alert") or "-",
                sev=severity_badge(x.get("severity")),
                score=x.get("score", "-"),
                zone=zone_badge(x.get("zone")),
                action=x.get("action") or "-",
                ev=evidence(x.get("evidence")),
            )
            for x in page.alerts
        )
        table = render(
            '<p class="sort-note">Newest first.</p><table class="rows alerts"><thead><tr>'
            "<th>When</th><th>Account</th><th>Alert</th><th>Severity</th><th>Score</th>"
            "<th>Zone</th><th>Action</th><th>Evidence</th></tr></thead><tbody>{rows}</tbody>"
            "</table>",
            rows=rows,
        )
    else:
        table = render('<p class="empty">No alert matches.</p>')
    body = join(
        [
            render("<h1>Alerts</h1>"),
            render('<ul class="zones">{c}</ul>', c=join(chips)),
            form,
            table,
            _pager(q.page, page.pages, page.total, q.per, lambda n: q.params(page=n), "/alerts"),
        ]
    )
    return layout("Alerts", body, store, as_of)


def error_page(status: int, message: str, store: str) -> Markup:
    return layout(
        f"{status}",
        render(
            '<h1>{status}</h1><p class="error">{message}</p>'
            '<p><a href="/">Back to the book</a></p>',
            status=status,
            message=message,
        ),
        store,
    )
