"""Read the Terraform under infra/ with python-hcl2 (no Terraform, no network)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CLOUDS = ("aws", "azure", "gcp")


def roots() -> list[Path]:
    return [INFRA / cloud for cloud in CLOUDS]


def modules() -> list[Path]:
    return sorted(p for p in INFRA.glob("*/modules/*") if p.is_dir())


def tf_dirs() -> list[Path]:
    return roots() + modules()


def tf_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*.tf") if ".terraform" not in p.parts)


@cache
def parse(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return hcl2.load(handle)


def blocks(directory: Path, kind: str) -> list[dict]:
    """All top-level blocks of one kind ("resource", "variable", ...) across a directory."""
    found: list[dict] = []
    for path in sorted(directory.glob("*.tf")):
        found.extend(parse(path).get(kind, []))
    return found


def resources(directory: Path, rtype: str | None = None) -> Iterator[tuple[str, str, dict]]:
    """(type, name, body) of every resource in a directory, optionally of one type."""
    for block in blocks(directory, "resource"):
        for kind, named in block.items():
            for name, body in named.items():
                if rtype is None or kind == rtype:
                    yield kind, name, body


def resource(directory: Path, rtype: str, name: str) -> dict:
    for _kind, rname, body in resources(directory, rtype):
        if rname == name:
            return body
    raise AssertionError(f"{directory.relative_to(REPO)} has no {rtype}.{name}")


def variables(directory: Path) -> dict[str, dict]:
    return {name: body for block in blocks(directory, "variable") for name, body in block.items()}


def module_calls(directory: Path) -> dict[str, dict]:
    return {name: body for block in blocks(directory, "module") for name, body in block.items()}


def locals_(directory: Path) -> dict:
    merged: dict = {}
    for block in blocks(directory, "locals"):
        merged.update(block)
    return merged


def providers(directory: Path, name: str) -> list[dict]:
    return [body for block in blocks(directory, "provider") for pname, body in block.items() if pname == name]


def one(value: object) -> dict:
    """hcl2 renders a nested block as a list of dicts; return the only one."""
    assert isinstance(value, list) and len(value) == 1, f"expected one block, got {value!r}"
    return value[0]


def expr(value: object) -> str:
    """An attribute as Terraform source-ish text: "${var.x}" -> "var.x"."""
    text = str(value)
    match = re.fullmatch(r"\$\{(.*)\}", text, flags=re.S)
    return match.group(1) if match else text


def object_attributes(type_expr: str) -> set[str]:
    """Attribute names of an object(...) type as hcl2 renders it: "${object({'a': ...})}"."""
    return set(re.findall(r"'([A-Za-z_][A-Za-z0-9_-]*)':", type_expr))


def regions_doc() -> dict:
    with open(INFRA / "regions.json", encoding="utf-8") as handle:
        return json.load(handle)


def deployed(cloud: str) -> dict[str, str]:
    """region -> jurisdiction for every region regions.json deploys in a cloud."""
    return {r: j for j, spec in regions_doc()["jurisdictions"].items() for r in spec[cloud]}
