"""The dashboard in a browser: Playwright driving Debian's Chromium through real HTTP to
``healthstream serve`` over a replayed synthetic history. Screenshots of each step are
kept in the test's temporary folder.

The reading tests run with JavaScript off: the page has none, and must not need it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_history import HOSTILE, History, ServeProcess

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    pytest.skip(
        f"the browser tests drive Debian's Chromium at {CHROMIUM}, which is not installed "
        "(apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need playwright (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, width: int = 1280, script: bool = False) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, java_script_enabled=script
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def book_rows(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "table.book tbody tr",
        """rows => rows.map(r => ({
            account: r.querySelector('td.account').innerText,
            score: r.querySelector('td.score').innerText,
            zone: r.querySelector('.zone').innerText,
            d7: r.querySelector('td[data-label="7 days"]').innerText}))""",
    )


def newest_zones(history: History) -> Counter[str]:
    """Each account's zone in its newest row of the history, read with SQL."""
    with sqlite3.connect(f"file:{history.path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT h.zone FROM score_history h JOIN (SELECT account_id, max(seq) AS seq"
            " FROM score_history GROUP BY account_id) n"
            " ON n.account_id = h.account_id AND n.seq = h.seq"
        ).fetchall()
    return Counter(zone for (zone,) in rows)


def change(text: str) -> float:
    """The 7-day change as the page shows it (▼ -12, 0, new)."""
    value = text.replace("▲", "").replace("▼", "").strip()
    return float("inf") if value == "new" else float(value)


def test_the_book_counts_sorts_filters_and_searches(
    browser: Any, server: ServeProcess, history: History, tmp_path: Path
) -> None:
    page = open_page(browser)
    page.goto(server.base + "/")
    page.screenshot(path=tmp_path / "book.png", full_page=True)

    zones = newest_zones(history)
    for zone, count in zones.items():
        assert page.inner_text(f'a[data-zone="{zone}"] .count') == str(count)
    assert page.inner_text("a.chip-all b") == str(sum(zones.values()))

    rows = book_rows(page)
    assert len(rows) == sum(zones.values())  # one page of 50 holds the 41 accounts
    risk = [(int(r["score"]), change(r["d7"])) for r in rows]
    assert risk == sorted(risk), "lowest score first, then the biggest fall"

    page.click("th >> text=Score")
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "ascending"
    scores = [int(r["score"]) for r in book_rows(page)]
    assert scores == sorted(scores)
    page.click("th >> text=Score")
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "descending"
    scores = [int(r["score"]) for r in book_rows(page)]
    assert scores == sorted(scores, reverse=True)
    page.screenshot(path=tmp_path / "book-by-score.png")

    page.select_option('select[name="zone"]', "critical")
    page.click("form.filters button")
    critical = book_rows(page)
    assert critical and {r["zone"] for r in critical} == {"critical"}
    assert len(critical) == zones["critical"]
    page.screenshot(path=tmp_path / "book-critical.png")

    page.goto(server.base + "/")
    page.fill('input[name="q"]', "acct-0001")
    page.click("form.filters button")
    found = sorted(r["account"] for r in book_rows(page))
    assert found == [f"acct-{i:05d}" for i in range(10, 20)]
    page.screenshot(path=tmp_path / "book-search.png")
    page.context.close()


def test_an_account_shows_its_chart_and_evidence(
    browser: Any, server: ServeProcess, history: History, tmp_path: Path
) -> None:
    page = open_page(browser)
    page.goto(server.base + "/")
    first = book_rows(page)[0]["account"]
    page.click(f'td.account a >> text="{first}"')
    assert page.inner_text("h1") == first
    chart = page.locator("svg.chart")
    assert chart.is_visible()
    assert page.locator("svg.chart path.score-line").get_attribute("d").startswith("M")
    assert page.locator("svg.chart rect.band").count() == 3
    # the bands of the profile the history was scored with (five_factor: 60 and 80)
    assert page.locator("rect.band-healthy title").text_content() == "healthy: 80 to 100"
    assert page.locator("rect.band-at_risk title").text_content() == "at risk: 60 to 80"
    mine = [o for o in history.outputs if o["account_id"] == first and o["kind"] != "alert"]
    rows = page.locator("#changes tbody tr")
    assert rows.count() == min(len(mine), 50)
    assert rows.first.get_attribute("data-seq") == str(mine[-1]["seq"])

    with_evidence = page.locator("#changes details.evidence").first
    with_evidence.locator("summary").click()  # a details element opens without script
    assert with_evidence.locator("dl dt").first.is_visible()
    detectors = [d for o in mine for d in o.get("detectors", [])]
    if detectors:
        assert page.locator("#changes li.finding").count() > 0
    page.screenshot(path=tmp_path / "account.png", full_page=True)
    page.context.close()


def test_an_alert_leads_to_its_account(
    browser: Any, server: ServeProcess, history: History, tmp_path: Path
) -> None:
    page = open_page(browser)
    page.goto(server.base + "/alerts")
    alerts = sorted(
        (o for o in history.outputs if o["kind"] == "alert"),
        key=lambda o: (o["account_id"], o["seq"]),
    )
    newest = sorted(alerts, key=lambda o: o["event_time"], reverse=True)[0]
    link = page.locator("table.alerts tbody tr").first.locator("td.account a")
    assert link.inner_text() == newest["account_id"]
    page.screenshot(path=tmp_path / "alerts.png")
    link.click()
    assert page.inner_text("h1") == newest["account_id"]
    assert page.locator("#alerts tbody tr").count() >= 1
    assert newest["alert"] in page.inner_text("#alerts")
    page.context.close()


def test_a_hostile_account_id_is_shown_as_text(
    browser: Any, server: ServeProcess, tmp_path: Path
) -> None:
    page = open_page(browser, script=True)  # a script that got in would run
    page.goto(server.base + "/?q=" + "%3Cscript%3E")
    cells = page.locator("td.account a")
    assert cells.count() == 1 and cells.first.inner_text() == HOSTILE
    assert page.locator("script").count() == 0 and page.locator("td.account b").count() == 0
    assert page.title() == "The book · healthstream"  # a script that ran would set "owned"
    page.screenshot(path=tmp_path / "hostile-book.png")
    cells.first.click()
    assert page.inner_text("h1") == HOSTILE
    assert page.locator("script").count() == 0
    assert page.title() == f"{HOSTILE} · healthstream"
    page.screenshot(path=tmp_path / "hostile-account.png")
    page.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_pages_fit_the_screen(
    browser: Any, server: ServeProcess, width: int, tmp_path: Path
) -> None:
    page = open_page(browser, width)
    for name, path in (("book", "/"), ("account", "/accounts/acct-00007"), ("alerts", "/alerts")):
        page.goto(server.base + path)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow} px wide at {width} px"
        page.screenshot(path=tmp_path / f"{name}-{width}.png", full_page=True)
    page.goto(server.base + "/")
    first_row = page.locator("table.book tbody tr").first
    if width < 700:  # a phone: rows are cards, each cell says what it is
        assert page.locator("table.book thead").bounding_box()["height"] <= 1
        label = page.evaluate(
            "getComputedStyle(document.querySelector('td.score'), '::before').content"
        )
        assert label == '"Score"'
        assert first_row.bounding_box()["width"] <= width
    else:
        assert page.locator("table.book thead").is_visible()
    page.context.close()
