"""Checks on the infrastructure as code in infra/ (issue 7).

Helpers shared by the infra tests: the Bicep files parsed once with pycep-parser (0.7 or newer,
from requirements-dev.txt), and small accessors over pycep's JSON-like output, in which a
resource's body is `resources[name]["config"]` (or `config["config"]` when the resource is
conditional, with the condition beside it), and expressions are nested dicts
(`{"operator": {...}}`, `{"function": {...}}`) while literals and bare identifiers are plain
values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MODULES = INFRA / "modules"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def module(name: str) -> dict[str, Any]:
    """A parsed module file by stem (`storage` -> infra/modules/storage.bicep)."""
    return parse(MODULES / f"{name}.bicep")


def main() -> dict[str, Any]:
    return parse(INFRA / "main.bicep")


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module declaration, conditional or not."""
    config = entry["config"]
    if "condition" in config and "config" in config:
        return config["config"]
    return config


def condition(entry: dict[str, Any]) -> Any:
    """The `if (...)` condition of a declaration, or None when unconditional."""
    config = entry["config"]
    return config.get("condition") if "config" in config else None


def resources_of_type(parsed: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: entry
        for name, entry in parsed.get("resources", {}).items()
        if entry["type"].lower() == resource_type.lower()
    }


def only_resource(parsed: dict[str, Any], resource_type: str, *, existing: bool = False) -> dict[str, Any]:
    found = [e for e in resources_of_type(parsed, resource_type).values() if e.get("existing") is existing]
    assert len(found) == 1, f"expected one {resource_type} (existing={existing}), found {len(found)}"
    return found[0]


def walk(node: Any) -> Iterator[Any]:
    """Every node of a parsed tree, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def strings(node: Any) -> list[str]:
    """Every string literal (or bare identifier) inside an expression, without pycep's own
    operator and function type names."""
    found: list[str] = []
    if isinstance(node, str):
        found.append(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "type" and isinstance(node.get("operands", node.get("parameters")), dict):
                continue
            found.extend(strings(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(strings(value))
    return found


def dotted(node: Any) -> str | None:
    """`a.b.c` for a property-access chain (or a bare identifier), else None."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and isinstance(node.get("operator"), dict):
        operator = node["operator"]
        if operator.get("type") == "property_accessor":
            left, right = dotted(operator["operands"]["operand_1"]), dotted(operator["operands"]["operand_2"])
            if left is not None and right is not None:
                return f"{left}.{right}"
    return None


def conditional(node: Any) -> dict[str, Any] | None:
    """The operands of `cond ? a : b`, or None when the node is not a conditional."""
    operator = node.get("operator") if isinstance(node, dict) else None
    if isinstance(operator, dict) and operator.get("type") == "conditional":
        return operator["operands"]
    return None


def function_call(node: Any, function_type: str) -> dict[str, Any] | None:
    """The parameters of a call to `function_type` (pycep's name, e.g. subscription_resource_id)."""
    function = node.get("function") if isinstance(node, dict) else None
    if isinstance(function, dict) and function.get("type") == function_type:
        return function.get("parameters", {})
    return None


def decorator(entry: dict[str, Any], decorator_type: str) -> dict[str, Any] | None:
    for item in entry.get("decorators", []):
        if item.get("type") == decorator_type:
            return item
    return None


def app_settings() -> dict[str, Any]:
    """The properties of the function app's 'appsettings' config resource (appsettings.bicep)."""
    config = only_resource(module("appsettings"), "Microsoft.Web/sites/config")
    settings_body = body(config)
    assert settings_body["name"] == "appsettings"
    return settings_body["properties"]
