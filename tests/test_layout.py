"""The house holds its shape: short functions, no room that swallows the rest, a pure core,
and no top-level name that could collide with another distribution's in site-packages."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("windows", "scoring", "telemetry", "stream", "sinks", "healthstream")
CORE = ("windows", "scoring", "telemetry")
#: what the core may never import: the Kafka and Faust stack, and the rooms above it
NOT_IN_CORE = ("faust", "aiokafka", "mode", "stream", "sinks", "healthstream")
LONGEST_FUNCTION = 80
LARGEST_SHARE = 0.40


def sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def long_functions(path: Path, limit: int, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                where = path.relative_to(root)
                found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def code_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_product_function_is_longer_than_a_screen() -> None:
    offenders = [
        found
        for package in PRODUCT
        for path in sources(package)
        for found in long_functions(path, LONGEST_FUNCTION)
    ]
    assert not offenders, "functions over 80 lines:\n" + "\n".join(offenders)


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST_FUNCTION))
    path = tmp_path / "long.py"
    path.write_text(f"def too_long() -> None:\n{body}\n", encoding="utf-8")
    assert long_functions(path, LONGEST_FUNCTION, tmp_path) == ["long.py:1 too_long (81 lines)"]


def test_no_package_holds_more_than_two_fifths_of_the_product() -> None:
    lines = {package: sum(code_lines(path) for path in sources(package)) for package in PRODUCT}
    total = sum(lines.values())
    assert all(lines.values()), lines
    shares = {package: count / total for package, count in lines.items()}
    too_big = {
        package: f"{share:.0%}" for package, share in shares.items() if share > LARGEST_SHARE
    }
    assert not too_big, f"packages over {LARGEST_SHARE:.0%} of {total} product lines: {too_big}"


def test_the_core_imports_no_kafka_no_faust_and_nothing_above_it() -> None:
    reaches = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & set(NOT_IN_CORE))
        for package in CORE
        for path in sources(package)
    }
    assert {where: names for where, names in reaches.items() if names} == {}


def test_the_import_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    path = tmp_path / "sneaky.py"
    path.write_text("def f() -> None:\n    from aiokafka import AIOKafkaProducer\n")
    assert "aiokafka" in imported_roots(path)


def test_the_worker_is_the_only_room_that_knows_faust() -> None:
    knows = sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCT
        if package != "stream"
        for path in sources(package)
        if imported_roots(path) & {"faust", "mode"}
    )
    assert knows == []


def test_every_installed_top_level_name_is_one_of_the_rooms() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setuptools["packages"]}
    assert tops == set(PRODUCT)
    for package in setuptools["packages"]:
        assert (ROOT / package.replace(".", "/")).is_dir(), package
