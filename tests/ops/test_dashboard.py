"""The Grafana dashboard: its queries ask for metrics the worker exposes, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.metrics import WorkerMetrics, series_names

OPS = Path(__file__).resolve().parents[2] / "ops"
NAME = re.compile(r"\bhealthstream_[a-zA-Z0-9_]+")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads((OPS / "grafana" / "dashboards" / "healthstream.json").read_text()))


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the panels and of the template variables."""
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        found.append(variable["definition"])
    return found


def test_every_metric_the_dashboard_queries_is_exposed_by_the_worker(
    dashboard: dict[str, Any],
) -> None:
    exposed = series_names(WorkerMetrics().registry)
    asked = {name for query in queries(dashboard) for name in NAME.findall(query)}
    assert asked <= exposed, f"not exposed: {sorted(asked - exposed)}"
    # every family the worker exposes is on the dashboard somewhere
    families = {f.name for f in WorkerMetrics().registry.collect()}
    shown = {f for f in families if any(name.startswith(f) for name in asked)}
    assert shown == families, f"not on the dashboard: {sorted(families - shown)}"


def test_the_dashboard_shows_lag_throughput_latency_zones_alerts_and_dead_letters(
    dashboard: dict[str, Any],
) -> None:
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("lag", "throughput", "latency", "zone", "alerts", "dead letters"):
        assert topic in titles, topic


def test_panels_use_the_provisioned_datasource_and_do_not_overlap(
    dashboard: dict[str, Any],
) -> None:
    provisioned = yaml.safe_load(
        (OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == provisioned, panel["title"]
            assert panel["targets"], panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == provisioned, panel["title"]
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, Grafana's variables filled in."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    filled = [
        q.replace("$__rate_interval", "1m").replace("$instance", ".*")
        for q in queries(dashboard)
        if not q.startswith("label_values(")
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(filled)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
