"""The layering the code keeps: data flows one way, from pipelines/ (CLI, config, wiring) down to
io_connectors/, transforms/ and runners/. Read from the source with ast, so a lazy import inside a
function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("io_connectors", "transforms", "pipelines", "runners", "benchmarks")
MAX_LINES = 600
CONNECTORS = ("kinesis", "eventhubs", "pubsub")


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Top-level package names and full dotted names this file imports, wherever the import is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("io_connectors", {"pipelines", "runners", "transforms", "benchmarks"}),
        ("transforms", {"pipelines", "runners", "benchmarks"}),
        ("runners", {"pipelines", "benchmarks"}),
    ],
)
def test_lower_layers_never_import_upper_ones(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_top(_imports(path)) & forbidden)
        for path in _modules(package)
        if _top(_imports(path)) & forbidden
    }
    assert offenders == {}


def test_no_process_global_exit_hooks_in_product_code() -> None:
    offenders = []
    for package in PRODUCT:
        for path in _modules(package):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and (
                    (node.attr == "excepthook" and isinstance(node.value, ast.Name) and node.value.id == "sys")
                    or (isinstance(node.value, ast.Name) and node.value.id == "atexit")
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if "atexit" in _top(_imports(path)):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_no_product_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for package in PRODUCT
        for path in _modules(package)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("connector", CONNECTORS)
def test_each_stream_connector_reads_through_the_shared_core(connector: str) -> None:
    imports = set().union(*(_imports(path) for path in _modules("io_connectors") if path.stem.startswith(connector)))
    assert "io_connectors.read_core" in imports


@pytest.mark.parametrize("connector", CONNECTORS)
def test_the_command_line_meets_each_connector_in_one_adapter(connector: str) -> None:
    connector_files = [path for path in _modules("io_connectors") if path.stem.startswith(connector)]
    for path in connector_files:
        assert "apache_beam.options.pipeline_options.PipelineOptions" not in _imports(path), path
    assert (REPO / "pipelines" / "adapters" / f"{connector}.py").is_file()
