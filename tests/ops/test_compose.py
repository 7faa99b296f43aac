"""docker-compose.yml: the services, ports, environment, mounts and worker command it runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.cli import build_parser, cmd_worker
from stream.produce import topic_layout
from stream.settings import ENVIRONMENT, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port → host port, from ``HOST:CONTAINER`` entries."""
    ports = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        ports[int(container)] = int(host)
    return ports


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts."""
    found = {}
    for entry in service.get("volumes", []):
        host, container = entry.split(":")[:2]
        found[container] = (ROOT / host).resolve()
    return found


def worker_settings(services: dict[str, Any]) -> Settings:
    environment = {k: str(v) for k, v in services["worker"]["environment"].items()}
    return load_settings(environ=environment)


def test_the_stack_has_kafka_topics_worker_prometheus_and_grafana(
    services: dict[str, Any],
) -> None:
    assert set(services) == {"kafka", "topics", "worker", "prometheus", "grafana"}
    assert published(services["kafka"]) == {9092: 9092}
    assert published(services["worker"]) == {9464: 9464}
    assert published(services["prometheus"]) == {9090: 9090}
    assert published(services["grafana"]) == {3000: 3000}


def test_kafka_is_one_kraft_node_that_clients_reach_on_localhost(
    services: dict[str, Any],
) -> None:
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    advertised = dict(a.split("://") for a in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(a.split("://") for a in env["KAFKA_LISTENERS"].split(","))
    external_port = int(advertised["EXTERNAL"].rpartition(":")[2])
    assert advertised["EXTERNAL"].startswith("localhost:")
    assert listeners["EXTERNAL"] == f":{external_port}"
    assert external_port in published(services["kafka"]).values()
    # the worker reaches the broker on the internal listener
    assert worker_settings(services).bootstrap_servers == advertised["INTERNAL"]


def test_the_topics_service_creates_every_topic_the_worker_uses(
    services: dict[str, Any],
) -> None:
    script = "\n".join(services["topics"]["command"])
    specs = re.search(r"for spec in ([^;]+);", script)
    assert specs is not None, script
    created = {name: int(n) for name, n in (s.split(":") for s in specs.group(1).split())}
    assert created == topic_layout(worker_settings(services))
    assert "--if-not-exists" in script
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_worker_environment_is_read_by_the_settings(services: dict[str, Any]) -> None:
    environment = services["worker"]["environment"]
    unknown = set(environment) - set(ENVIRONMENT)
    assert not unknown, f"the settings read no such variable: {sorted(unknown)}"
    settings = worker_settings(services)  # raises SettingsError on a bad value
    assert settings.metrics_port in published(services["worker"])


def test_the_worker_runs_a_real_healthstream_worker_command(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M)
    assert entrypoint is not None
    assert yaml.safe_load(entrypoint.group(1)) == ["healthstream"]
    assert re.search(rf"^EXPOSE {worker_settings(services).metrics_port}$", dockerfile, re.M)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}:
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), package

    command = worker["command"]
    args = build_parser().parse_args(command)  # exits on a flag the CLI does not take
    assert args.func is cmd_worker
    assert args.tick_interval > 0


def test_every_mount_is_a_file_or_folder_of_the_repository(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for container, host in mounts(service).items():
            assert host.exists(), f"{name}: {host} (mounted at {container}) does not exist"
            assert ROOT in host.parents, f"{name}: {host} is outside the repository"


def test_prometheus_scrapes_the_worker_and_loads_the_rules(services: dict[str, Any]) -> None:
    folder = mounts(services["prometheus"])["/etc/prometheus"]
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    assert all((folder / rules).is_file() for rules in config["rule_files"])
    [job] = config["scrape_configs"]
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    assert discovery["port"] == worker_settings(services).metrics_port
    assert job["job_name"] == "healthstream"  # the job the alerting rules select


def test_grafana_provisions_the_datasource_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = mounts(services["grafana"])
    provisioning = grafana["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == f"http://prometheus:{next(iter(published(services['prometheus'])))}"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "healthstream.yml").read_text())[
        "providers"
    ]
    dashboards = grafana[provider["options"]["path"]]
    assert (dashboards / "healthstream.json").is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"])
    assert (dashboards / Path(home).name).is_file()
