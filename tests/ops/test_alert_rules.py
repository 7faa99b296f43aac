"""Alerting rules: every metric they ask for exists, promtool accepts them and their tests pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.metrics import WorkerMetrics, series_names

PROMETHEUS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
NAME = re.compile(r"\bhealthstream_[a-zA-Z0-9_]+")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run([path, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def test_every_metric_the_rules_ask_for_is_exposed_by_the_worker() -> None:
    exposed = series_names(WorkerMetrics().registry)
    asked = {name for rule in rules() for name in NAME.findall(rule["expr"])}
    assert asked, "the rules query no healthstream metric"
    assert asked <= exposed, f"not exposed: {sorted(asked - exposed)}"
    # consumer lag, dead letters and event-time lag each have a rule
    for needed in (
        "healthstream_consumer_lag_records",
        "healthstream_dead_letters_total",
        "healthstream_event_time_lag_seconds",
    ):
        assert needed in asked, needed


def test_every_rule_says_how_bad_and_what_to_do() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert rule["alert"].startswith("Healthstream"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def github_anchor(heading: str) -> str:
    """The fragment a Markdown heading gets on GitHub: lower case, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_rule_links_a_runbook_section_that_exists() -> None:
    runbook = PROMETHEUS.parents[1] / "docs" / "runbook.md"
    headings = re.findall(r"^#+ (.+)$", runbook.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        path, _, fragment = url.partition("#")
        assert path == "docs/runbook.md", rule["alert"]
        assert fragment in anchors, f"{rule['alert']}: no section #{fragment} in docs/runbook.md"
        section = runbook.read_text().split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**What it means.**", "**Do.**"):
            assert part in section or "**Check and do.**" in section, (rule["alert"], part)


def test_every_rule_has_a_unit_test_where_it_fires() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}


def test_promtool_checks_the_rules_and_the_config_and_runs_the_rule_tests() -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts.test.yml"),
    ):
        run = promtool(*args)
        assert run.returncode == 0, f"promtool {' '.join(args)}:\n{run.stdout}{run.stderr}"
