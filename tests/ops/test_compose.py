"""docker-compose.yml: the services, ports, environment, mounts and worker command it runs."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from healthstream.cli import build_parser, cmd_worker
from stream.settings import ENVIRONMENT, Settings, load_settings
from stream.topics import topic_configs, topic_layout

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


def published(service: dict[str, Any]) -> dict[int, int | None]:
    """Container port → host port, from ``HOST:CONTAINER`` entries (None: a ``CONTAINER``
    entry, which Docker publishes on a free host port)."""
    ports: dict[int, int | None] = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        ports[int(container)] = int(host) if host else None
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
    assert published(services["worker"]) == {9464: None, 6066: None}
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


def test_scaling_the_worker_publishes_no_fixed_host_port(services: dict[str, Any]) -> None:
    """``docker compose up --scale worker=3``: three containers cannot share a host port."""
    worker = services["worker"]
    assert "container_name" not in worker
    for entry in worker.get("ports", []):
        host, _, _ = str(entry).rpartition(":")
        assert not host or "-" in host, f"fixed host port {entry!r} stops --scale worker=3"


def compose_interpolated(text: str) -> str:
    """The text as compose hands it to the container: ``$$`` is a ``$``; a lone ``$`` would
    be an environment variable of the machine running compose."""
    assert "$" not in text.replace("$$", ""), text
    return text.replace("$$", "$")


def run_topics_job(services: dict[str, Any], tmp_path: Path) -> list[list[str]]:
    """Run the topics job's script with bash, the Kafka tools replaced by stubs that
    record their arguments; returns each call as [tool, arg, ...]."""
    topics = services["topics"]
    assert topics["entrypoint"] == ["/bin/bash", "-c"]
    [script] = topics["command"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.jsonl"
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        stub = bin_dir / tool
        stub.write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"with open({str(calls)!r}, 'a') as f:\n"
            "    f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n"
        )
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    text = compose_interpolated(script).replace("/opt/kafka/bin/", f"{bin_dir}/")
    subprocess.run(["bash", "-c", text], check=True, timeout=30)
    return [json.loads(line) for line in calls.read_text().splitlines()]


def options(call: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    args = call[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            found.setdefault(arg, []).append(value)
    return found


def test_the_topics_service_creates_every_topic_the_worker_uses_with_its_configs(
    services: dict[str, Any], tmp_path: Path
) -> None:
    settings = worker_settings(services)
    calls = run_topics_job(services, tmp_path)
    created: dict[str, int] = {}
    configs: dict[str, dict[str, str]] = {}
    altered: dict[str, dict[str, str]] = {}
    for call in calls:
        opts = options(call)
        assert opts["--bootstrap-server"] == [settings.bootstrap_servers]
        if call[0] == "kafka-topics.sh":
            assert "--create" in opts and "--if-not-exists" in opts
            assert opts["--replication-factor"] == ["1"]
            [name] = opts["--topic"]
            created[name] = int(opts["--partitions"][0])
            configs[name] = dict(c.split("=", 1) for c in opts.get("--config", []))
        else:
            assert "--alter" in opts and opts["--entity-type"] == ["topics"]
            [name] = opts["--entity-name"]
            [pairs] = opts["--add-config"]
            altered[name] = dict(c.split("=", 1) for c in pairs.split(","))
    assert created == topic_layout(settings)
    # created with the configs, and the configs set again on a topic that was there already
    assert configs == topic_configs(settings)
    assert altered == topic_configs(settings)
    assert configs[f"{settings.app_id}-accounts-changelog"] == {
        "cleanup.policy": "compact",
        "segment.bytes": "67108864",
    }
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_worker_environment_is_read_by_the_settings(services: dict[str, Any]) -> None:
    environment = services["worker"]["environment"]
    unknown = set(environment) - set(ENVIRONMENT)
    assert not unknown, f"the settings read no such variable: {sorted(unknown)}"
    settings = worker_settings(services)  # raises SettingsError on a bad value
    assert settings.metrics_port in published(services["worker"])
    # the account API listens on the container's every interface, on a published port
    assert settings.web_enabled and settings.web_host == "0.0.0.0"
    assert settings.web_port in published(services["worker"])


def test_the_worker_runs_a_real_healthstream_worker_command(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M)
    assert entrypoint is not None
    assert yaml.safe_load(entrypoint.group(1)) == ["healthstream"]
    settings = worker_settings(services)
    exposed = re.search(r"^EXPOSE (.+)$", dockerfile, re.M)
    assert exposed is not None
    assert exposed.group(1).split() == [str(settings.metrics_port), str(settings.web_port)]
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
