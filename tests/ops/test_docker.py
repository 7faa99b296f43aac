"""The Dockerfile and .dockerignore: the package the Makefile installs, pinned versions, a user
that is not root, a health check that answers, and a build context without the clutter."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import CollectorRegistry

from healthstream.dev.broker import _free_port
from stream.metrics import MetricsServer

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(name: str) -> list[str]:
    """The arguments of every ``NAME`` instruction, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, re.M)]


def pip_install_target(command: str) -> tuple[list[str], str]:
    """The options of a ``pip install`` command line and the one thing it installs."""
    words = shlex.split(command[command.index("pip install") :].split("&&")[0])[2:]
    targets = [w for w in words if not w.startswith("-")]
    options = [w for w in words if w.startswith("-")]
    # an option's value (``--constraint FILE``) is no target
    for option in ("--constraint", "-c"):
        if option in words:
            targets.remove(words[words.index(option) + 1])
    [target] = targets
    return options, target


def test_the_image_installs_the_package_the_makefile_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [make_install] = [
        line for line in makefile.splitlines() if "pip install" in line and "-e" in line
    ]
    _, make_target = pip_install_target(make_install)
    [run] = [r for r in instructions("RUN") if "pip install" in r]
    options, image_target = pip_install_target(run)
    # the Makefile installs the working tree with the dev extras, the image without them
    assert re.sub(r"\[.*\]$", "", make_target) == image_target == "."
    [workdir, *_] = instructions("WORKDIR")
    copied = {line.split()[-1]: line.split()[:-1] for line in instructions("COPY")}
    # "." in the image is where pyproject.toml, its readme and every package were copied
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= set(copied["./"])
    for package in {p.split(".")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]}:
        assert copied[package] == [package], package
    assert workdir.startswith("/")
    assert "--constraint" in options and "constraints.txt" in copied["./"]


def runtime_closure() -> dict[str, str]:
    """Every distribution the package needs at run time, with its installed version."""
    env = default_environment() | {"extra": ""}
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    found: dict[str, str] = {}
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (requirement.marker and not requirement.marker.evaluate(env)):
            continue
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            continue
        found[name] = dist.version
        todo += [Requirement(r) for r in dist.requires or []]
    return found


def test_the_constraints_pin_what_the_tests_run_with() -> None:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pin = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert pin, f"not a pin: {line!r}"
        pins[canonicalize_name(pin.group(1))] = pin.group(2)
    assert "healthstream" not in pins
    needed = runtime_closure()
    assert needed, "no runtime dependency found"
    stale = {n: (pins.get(n), v) for n, v in needed.items() if pins.get(n) != v}
    assert not stale, (
        f"constraints.txt differs from the environment (run make constraints): {stale}"
    )
    for requirement in map(Requirement, PYPROJECT["project"]["dependencies"]):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])


def test_the_image_runs_as_a_user_of_its_own() -> None:
    users = instructions("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1]
    assert user not in ("root", "0")
    assert any(re.search(rf"useradd .*\b{user}$", run) for run in instructions("RUN"))
    # the user comes last: nothing after it needs root
    assert DOCKERFILE.rindex("USER ") > DOCKERFILE.rindex("RUN ")


def healthcheck() -> list[str]:
    [check] = instructions("HEALTHCHECK")
    command = check[check.index("CMD") + 3 :].strip()
    return list(json.loads(command))


def test_the_health_check_asks_the_metrics_port_it_exposes() -> None:
    command = healthcheck()
    [ports] = instructions("EXPOSE")
    exposed = ports.split()[0]  # the metrics port, then the account API's
    assert f"'HEALTHSTREAM_METRICS_PORT', '{exposed}'" in command[-1]


@pytest.fixture
def metrics_port() -> int:
    return _free_port()


def run_healthcheck(port: int) -> int:
    program, *args = healthcheck()
    assert program == "python"
    env = os.environ | {"HEALTHSTREAM_METRICS_PORT": str(port)}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, timeout=30
    ).returncode


def test_the_health_check_passes_while_the_metrics_server_answers(metrics_port: int) -> None:
    server = MetricsServer(CollectorRegistry(), metrics_port, "0.0.0.0")
    server.start()
    try:
        assert run_healthcheck(metrics_port) == 0
    finally:
        server.stop()
    assert run_healthcheck(metrics_port) != 0


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether docker leaves the path out: a pattern matches it or one of its folders.
    (The patterns here are plain names, globs of the context's top level, and ``**/NAME``.)"""
    assert not any(p.startswith("!") for p in patterns), "exceptions are not modelled here"
    parts = relative.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for pattern in patterns:
            if pattern.startswith("**/"):
                if fnmatch.fnmatchcase(parts[depth - 1], pattern[3:]):
                    return True
            elif fnmatch.fnmatchcase(prefix, pattern):
                return True
    return False


def test_dockerignore_leaves_out_the_clutter_and_keeps_what_the_image_copies() -> None:
    patterns = ignore_patterns()
    for clutter in (".venv", ".git", "bench/workload-5000-30.jsonl", "data/cdnow-even.csv"):
        assert ignored(clutter, patterns), clutter
    for cache in (".mypy_cache", ".pytest_cache", ".ruff_cache", "stream/__pycache__/x.pyc"):
        assert ignored(cache, patterns), cache
    for line in instructions("COPY"):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), f"{source} is copied but ignored"


def test_the_build_context_is_small() -> None:
    patterns = ignore_patterns()
    size = 0
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if here == "." else f"{here}/"
        dirs[:] = [d for d in dirs if not ignored(prefix + d, patterns)]
        size += sum(
            (Path(folder) / f).stat().st_size for f in files if not ignored(prefix + f, patterns)
        )
    assert size < 5_000_000, f"the build context is {size:,} bytes"
