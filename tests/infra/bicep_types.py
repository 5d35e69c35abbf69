"""Bicep checked against Bicep's own type index (tests/infra/bicep-types/), without the Bicep CLI.

Each file is parsed with pycep's grammar. The checker walks pycep's Lark tree rather than its JSON,
because only the tree tells a string literal from an identifier and knows every line. It reports
`file:line: message` for:

- a resource type or api version that the type index does not have;
- in a resource body (nested child resources, loops and conditional resources included): an
  unknown property, a read-only one, a missing required one, a literal of the wrong type, a string
  that is not one of the allowed values, a number or a length out of range. A value known only at
  deployment (a function call, a property of another resource, ...) is skipped; a literal is
  checked wherever it stands, including both branches of `c ? a : b` and `a ?? b`, a variable
  that holds one, and a parameter's @allowed values and declared type;
- anything but `name`, `scope` and `parent` (and an extension's identifiers, such as Microsoft
  Graph's `uniqueName`) on an `existing` resource;
- a module call with an unknown or a missing parameter, a literal that its parameter refuses, or a
  read of an output that the module does not declare; a read of a resource property that the type
  does not have;
- a property read on a conditional resource or module without `.?` (Bicep's warning BCP318: the
  value is null when the condition is false).

Not checked: property names are compared exactly (Bicep is case-insensitive here but the repo is
not), string patterns (written for .NET regular expressions) and anything of a user-defined type.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Token, Tree

TYPES_DIR = Path(__file__).with_name("bicep-types")

REQUIRED, READ_ONLY, IDENTIFIER = 1, 2, 16
# Keywords of a resource declaration that are not properties of the resource type.
DECLARATION_KEYS = {"parent", "scope", "dependsOn"}
MODULE_KEYS = {"name", "params", "scope", "dependsOn"}
EXISTING_KEYS = {"name", "scope", "parent"}
# Properties of a resource that exist without a runtime reference, so BCP318 does not apply to them.
RESOURCE_CONSTANTS = {"id", "name", "type", "apiVersion"}
PARAM_KINDS = {"string", "int", "bool", "object", "array"}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    message: str

    def render(self, root: Path | None = None) -> str:
        shown = self.path
        if root is not None and self.path.is_relative_to(root):
            shown = self.path.relative_to(root)
        return f"{shown.as_posix()}:{self.line}: {self.message}"


# --- The type index --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    """One node of a types.json file, with the file's nodes to resolve its references."""

    nodes: tuple[dict[str, Any], ...]
    node: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.node["$type"]

    def ref(self, reference: dict[str, str]) -> Type:
        return Type(self.nodes, self.nodes[int(reference["$ref"].removeprefix("#/"))])

    def members(self) -> list[Type]:
        return [self.ref(element) for element in self.node.get("elements", [])]

    def properties(self, discriminator_value: str | None = None) -> dict[str, tuple[Type, int]] | None:
        """Property name -> (type, flags) of an object type; None when this is not an object."""
        if self.kind == "ObjectType":
            return {name: (self.ref(p["type"]), p.get("flags", 0)) for name, p in self.node["properties"].items()}
        if self.kind == "DiscriminatedObjectType":
            merged = {n: (self.ref(p["type"]), p.get("flags", 0)) for n, p in self.node["baseProperties"].items()}
            elements = self.node["elements"]
            chosen = [elements[discriminator_value]] if discriminator_value in elements else list(elements.values())
            for element in chosen:
                merged.update(self.ref(element).properties() or {})
            return merged
        return None

    def additional(self) -> Type | None:
        extra = self.node.get("additionalProperties")
        return self.ref(extra) if extra else None

    def describe(self) -> str:
        kind = self.kind
        if kind == "StringLiteralType":
            return repr(self.node["value"])
        if kind == "UnionType":
            return " | ".join(sorted({member.describe() for member in self.members()}))
        if kind == "ArrayType":
            return f"{self.ref(self.node['itemType']).describe()}[]"
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            return f"object ({self.node.get('name', 'object')})"
        return {"StringType": "string", "IntegerType": "int", "BooleanType": "bool", "AnyType": "any"}.get(kind, kind)


class TypeIndex:
    def __init__(self, directory: Path = TYPES_DIR) -> None:
        self.resources: dict[str, Type] = {}
        for path in sorted(directory.glob("*.json")):
            nodes = tuple(json.loads(path.read_text(encoding="utf-8")))
            for node in nodes:
                if node["$type"] == "ResourceType":
                    self.resources[node["name"].lower()] = Type(nodes, node).ref(node["body"])

    def body(self, resource_type: str, api_version: str) -> Type | None:
        return self.resources.get(f"{resource_type}@{api_version}".lower())

    def api_versions(self, resource_type: str) -> list[str]:
        prefix = f"{resource_type.lower()}@"
        return sorted(name.split("@", 1)[1] for name in self.resources if name.startswith(prefix))


@functools.cache
def default_index() -> TypeIndex:
    return TypeIndex()


# --- Bicep source --------------------------------------------------------------------------------


@functools.cache
def _parser():
    from pycep import BicepParser

    return BicepParser().lark_parser


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _line(node: Tree | Token) -> int:
    return node.line if isinstance(node, Token) else node.meta.line


def _start(node: Tree | Token) -> int:
    return node.start_pos if isinstance(node, Token) else node.meta.start_pos


def _end(node: Tree | Token) -> int:
    return node.end_pos if isinstance(node, Token) else node.meta.end_pos


def _identifier(node: Any) -> str | None:
    """The name when the node is a bare identifier (`foo`), else None."""
    if isinstance(node, Tree) and node.data == "string":
        token = node.children[0]
        if isinstance(token, Token) and token.type == "STRING":
            return str(token)
    return None


def _leftmost_identifier(node: Any) -> str | None:
    """pycep nests an accessor chain to the right and lets it swallow what follows (`a.b ?? c` is
    `a.(b ?? c)`), so the name of a chain's last segment is the leftmost identifier of that node."""
    while isinstance(node, Tree):
        if node.data == "string":
            return _identifier(node)
        if not node.children:
            return None
        node = node.children[0]
    return None


@dataclass
class Param:
    name: str
    kind: str | None  # string, int, bool, object, array, or None for a user-defined type
    allowed: list[Any] | None
    bounds: dict[str, int]
    optional: bool
    default: tuple[bool, Any] = (False, None)  # (is a literal, its value)


@dataclass
class Symbol:
    name: str
    kind: str  # "resource" or "module"
    conditional: bool
    loop: bool
    body_type: Type | None = None
    module: BicepFile | None = None


@dataclass
class BicepFile:
    path: Path
    text: str
    tree: Tree
    params: dict[str, Param] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)


class ParseError(Exception):
    pass


@functools.cache
def load(path: Path) -> BicepFile:
    text = path.read_text(encoding="utf-8")
    try:
        tree = _parser().parse(text)
    except Exception as error:  # Lark's errors carry the position
        raise ParseError(f"{path}: does not parse: {str(error).splitlines()[0]}") from error
    parsed = BicepFile(path, text, tree)
    for element in tree.children:
        if not isinstance(element, Tree):
            continue
        if element.data == "param":
            parsed.params[str(element.children[1])] = _param(element, text)
        elif element.data == "var":
            parsed.variables[str(element.children[1])] = element.children[-1]
        elif element.data == "output":
            parsed.outputs.add(str(element.children[1]))
    return parsed


def _literal(node: Any) -> tuple[bool, Any]:
    """(True, value) for a literal string, number, bool or null; (False, None) otherwise."""
    if not isinstance(node, Tree):
        return False, None
    if node.data == "string":
        token = node.children[0]
        if token.type == "QUOTED_INTERPOLATION" and "${" not in token:
            return True, _unquote(str(token))
        return False, None
    if node.data == "multi_line_string":
        text = str(node.children[0])[3:-3]
        return True, text[1:] if text.startswith("\n") else text
    if node.data == "int_type":
        return True, int(node.children[0])
    if node.data in ("true", "false"):
        return True, node.data == "true"
    if node.data == "null":
        return True, None
    if node.data == "operator" and node.children[0].data == "minus":
        known, value = _literal(node.children[0].children[0])
        if known and isinstance(value, int):
            return True, -value
    return False, None


def _decorators(element: Tree) -> dict[str, Any]:
    found: dict[str, Any] = {}
    first = element.children[0]
    if isinstance(first, Tree) and first.data == "decorators":
        for decorator in first.children:
            name = str(decorator.children[0])
            found[name] = decorator.children[1] if len(decorator.children) > 1 else None
    return found


def _param(element: Tree, text: str) -> Param:
    decorators = _decorators(element)
    data_type = element.children[2]
    base = data_type.children[0].children[0]
    kind = "array" if len(data_type.children) > 1 else (str(base) if isinstance(base, Token) else None)
    allowed = None
    if isinstance(decorators.get("allowed"), Tree):
        allowed = [_literal(item)[1] for item in decorators["allowed"].children]
    bounds = {}
    for name in ("minValue", "maxValue", "minLength", "maxLength"):
        known, value = _literal(decorators.get(name))
        if known and isinstance(value, int):
            bounds[name] = value
    # `param x string?` (nullable) leaves no token for `?` in pycep's tree: read the source.
    nullable = text[_end(data_type) : _end(data_type) + 1] == "?"
    return Param(
        name=str(element.children[1]),
        kind=kind if kind in PARAM_KINDS else None,
        allowed=allowed,
        bounds=bounds,
        optional=element.children[3] is not None or nullable,
        default=_literal(element.children[3]),
    )


# --- The checker ---------------------------------------------------------------------------------


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return "string"


def _accepts_kind(type_: Type, kind: str) -> bool:
    """Whether a value of a Bicep kind (string, int, bool, object, array) may stand for this type."""
    k = type_.kind
    if k == "AnyType":
        return True
    if k == "UnionType":
        return any(_accepts_kind(member, kind) for member in type_.members())
    return {
        "StringType": "string",
        "StringLiteralType": "string",
        "IntegerType": "int",
        "BooleanType": "bool",
        "ObjectType": "object",
        "DiscriminatedObjectType": "object",
        "ArrayType": "array",
    }.get(k) == kind


def _literal_problem(value: Any, type_: Type) -> str | None:
    """Why a literal does not fit a type, or None when it does."""
    k = type_.kind
    if value is None or k == "AnyType":
        return None
    if k == "UnionType":
        members = type_.members()
        problems = [_literal_problem(value, member) for member in members]
        if any(problem is None for problem in problems):
            return None
        literals = sorted(m.node["value"] for m in members if m.kind == "StringLiteralType")
        if isinstance(value, str) and literals and all(m.kind == "StringLiteralType" for m in members):
            return f"{value!r} is not one of {', '.join(repr(v) for v in literals)}"
        return f"expected {type_.describe()}, got {_kind_of(value)} {value!r}"
    if k == "StringLiteralType":
        if value == type_.node["value"]:
            return None
        return f"expected {type_.describe()}, got {_kind_of(value)} {value!r}"
    if k == "StringType" and isinstance(value, str):
        if len(value) < type_.node.get("minLength", 0):
            return f"{value!r} is shorter than {type_.node['minLength']} characters"
        if "maxLength" in type_.node and len(value) > type_.node["maxLength"]:
            return f"{value!r} is longer than {type_.node['maxLength']} characters"
        return None
    if k == "IntegerType" and isinstance(value, int) and not isinstance(value, bool):
        if "minValue" in type_.node and value < type_.node["minValue"]:
            return f"{value} is below the minimum {type_.node['minValue']}"
        if "maxValue" in type_.node and value > type_.node["maxValue"]:
            return f"{value} is above the maximum {type_.node['maxValue']}"
        return None
    if k == "BooleanType" and isinstance(value, bool):
        return None
    return f"expected {type_.describe()}, got {_kind_of(value)} {value!r}"


class Checker:
    def __init__(self, index: TypeIndex | None = None) -> None:
        self.index = index or default_index()
        self.findings: list[Finding] = []

    # -- entry points --

    def check_file(self, path: Path) -> list[Finding]:
        try:
            bicep = load(path.resolve())
        except ParseError as error:
            self.findings.append(Finding(path, 1, str(error)))
            return self.findings
        symbols: dict[str, Symbol] = {}
        for element in bicep.tree.children:
            if isinstance(element, Tree) and element.data == "resource":
                self._resource(bicep, element, symbols)
            elif isinstance(element, Tree) and element.data == "module":
                self._module(bicep, element, symbols)
        self._accesses(bicep, symbols)
        return self.findings

    # -- reporting --

    def _report(self, bicep: BicepFile, node: Tree | Token, message: str) -> None:
        self.findings.append(Finding(bicep.path, _line(node), message))

    # -- resources --

    def _resource(
        self,
        bicep: BicepFile,
        element: Tree,
        symbols: dict[str, Symbol],
        parent: tuple[str, str] | None = None,
    ) -> None:
        if parent is None:
            name_token, type_node, existing, value = element.children[1:5]
            type_token = type_node.children[0]
        else:
            name_token, type_token, existing, value = element.children
        type_text = _unquote(str(type_token))
        resource_type, _, api_version = type_text.partition("@")
        if parent is not None and "/" not in resource_type:
            resource_type = f"{parent[0]}/{resource_type}"
            api_version = api_version or parent[1]
        conditional, loop, body = self._unwrap(value)
        name = str(name_token)
        label = f"{name} ({resource_type}@{api_version})"
        body_type = self.index.body(resource_type, api_version)
        symbols[name] = Symbol(name, "resource", conditional, loop, body_type)
        if body_type is None:
            known = self.index.api_versions(resource_type)
            hint = f"api versions in the index: {', '.join(known)}" if known else "no such resource type in the index"
            self._report(bicep, type_token, f"{label}: not in Bicep's type index ({hint})")
        elif isinstance(body, Tree) and body.data == "object":
            if existing is not None:
                self._existing_body(bicep, body, body_type, label)
            else:
                self._object(bicep, body, body_type, label, skip=DECLARATION_KEYS)
        if isinstance(body, Tree) and body.data == "object":
            for child in body.children:
                if isinstance(child, Tree) and child.data == "child_resource":
                    self._resource(bicep, child, symbols, parent=(resource_type, api_version))

    def _existing_body(self, bicep: BicepFile, body: Tree, body_type: Type, label: str) -> None:
        properties = body_type.properties() or {}
        identifiers = {name for name, (_, flags) in properties.items() if flags & IDENTIFIER}
        for key, key_node, value in self._pairs(body):
            if key in EXISTING_KEYS or key in identifiers:
                if key in properties:
                    self._value(bicep, value, properties[key][0], f"{label}.{key}")
                continue
            self._report(
                bicep,
                key_node,
                f"{label}: '{key}' cannot be set on an existing resource "
                f"(only {', '.join(sorted(EXISTING_KEYS | identifiers))})",
            )

    @staticmethod
    def _unwrap(value: Any) -> tuple[bool, bool, Any]:
        """(conditional, loop, body) of a resource or module value."""
        conditional = loop = False
        if isinstance(value, Tree) and value.data == "loop":
            loop, value = True, value.children[-1]
        if isinstance(value, Tree) and value.data == "deploy_condition":
            conditional, value = True, value.children[1]
        return conditional, loop, value

    @staticmethod
    def _pairs(obj: Tree) -> Iterator[tuple[str, Tree, Any]]:
        for child in obj.children:
            if isinstance(child, Tree) and child.data == "pair":
                key_node, value = child.children[0], child.children[1]
                token = key_node.children[0]
                key = _unquote(str(token)) if str(token).startswith("'") else str(token)
                yield key, key_node, value

    # -- values against types --

    def _object(self, bicep: BicepFile, obj: Tree, type_: Type, path: str, skip: set[str] = frozenset()) -> None:
        pairs = [(k, n, v) for k, n, v in self._pairs(obj) if k not in skip]
        discriminator_value = None
        if type_.kind == "DiscriminatedObjectType":
            discriminator = type_.node["discriminator"]
            for key, key_node, value in pairs:
                if key == discriminator:
                    known, literal = _literal(value)
                    if known:
                        discriminator_value = literal
                        if literal not in type_.node["elements"]:
                            allowed = ", ".join(repr(e) for e in sorted(type_.node["elements"]))
                            self._report(bicep, key_node, f"{path}.{key}: {literal!r} is not one of {allowed}")
        properties = type_.properties(discriminator_value)
        if properties is None:
            return
        additional = type_.additional()
        for key, key_node, value in pairs:
            where = f"{path}.{key}"
            if key in properties:
                prop_type, flags = properties[key]
                if flags & READ_ONLY and not flags & REQUIRED:
                    self._report(bicep, key_node, f"{where}: read-only property (the service sets it)")
                    continue
                self._value(bicep, value, prop_type, where)
            elif additional is not None:
                self._value(bicep, value, additional, where)
            else:
                close = difflib.get_close_matches(key, list(properties), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self._report(bicep, key_node, f"{where}: unknown property of {type_.describe()}{hint}")
        present = {key for key, _, _ in self._pairs(obj)}
        for name, (_, flags) in sorted(properties.items()):
            if flags & REQUIRED and not flags & READ_ONLY and name not in present:
                self._report(bicep, obj, f"{path}: missing required property '{name}'")

    def _value(self, bicep: BicepFile, node: Any, type_: Type, path: str, seen: frozenset[str] = frozenset()) -> None:
        if type_.kind == "AnyType" or not isinstance(node, Tree):
            return
        known, literal = _literal(node)
        if known:
            problem = _literal_problem(literal, type_)
            if problem:
                self._report(bicep, node, f"{path}: {problem}")
            return
        data = node.data
        if data == "string":
            token = node.children[0]
            if token.type == "QUOTED_INTERPOLATION":  # an interpolated string: a string, value unknown
                if not _accepts_kind(type_, "string"):
                    self._report(bicep, node, f"{path}: expected {type_.describe()}, got an interpolated string")
                return
            self._identifier_value(bicep, str(token), node, type_, path, seen)
        elif data == "object":
            if not _accepts_kind(type_, "object"):
                self._report(bicep, node, f"{path}: expected {type_.describe()}, got an object")
                return
            for candidate in self._candidates(type_, "object"):
                self._object(bicep, node, candidate, path)
        elif data == "array":
            if not _accepts_kind(type_, "array"):
                self._report(bicep, node, f"{path}: expected {type_.describe()}, got an array")
                return
            for candidate in self._candidates(type_, "array"):
                item_type = candidate.ref(candidate.node["itemType"])
                for position, item in enumerate(node.children):
                    self._value(bicep, item, item_type, f"{path}[{position}]", seen)
        elif data == "loop":
            if not _accepts_kind(type_, "array"):
                self._report(bicep, node, f"{path}: expected {type_.describe()}, got a for-expression (an array)")
                return
            for candidate in self._candidates(type_, "array"):
                self._value(bicep, node.children[-1], candidate.ref(candidate.node["itemType"]), f"{path}[*]", seen)
        elif data == "operator":
            operation = node.children[0]
            if operation.data == "conditional":
                for branch in operation.children[1:]:
                    self._value(bicep, branch, type_, path, seen)
            elif operation.data == "coalesce":
                for branch in operation.children:
                    self._value(bicep, branch, type_, path, seen)

    @staticmethod
    def _candidates(type_: Type, kind: str) -> list[Type]:
        """The members of a (union) type that a value of this kind is checked against: only one, so a
        union of two object shapes does not report the other shape's complaints."""
        if type_.kind == "UnionType":
            fitting = [m for m in type_.members() if _accepts_kind(m, kind) and m.kind != "AnyType"]
            return fitting[:1] if len(fitting) == 1 else []
        return [type_]

    def _identifier_value(
        self, bicep: BicepFile, name: str, node: Tree, type_: Type, path: str, seen: frozenset[str]
    ) -> None:
        if name in bicep.params:
            param = bicep.params[name]
            if param.allowed is not None:
                for allowed in param.allowed:
                    problem = _literal_problem(allowed, type_)
                    if problem:
                        self._report(bicep, node, f"{path}: parameter {name} allows {allowed!r}: {problem}")
            elif param.kind is not None and not _accepts_kind(type_, param.kind):
                self._report(bicep, node, f"{path}: expected {type_.describe()}, got parameter {name} ({param.kind})")
        elif name in bicep.variables and name not in seen:
            value = bicep.variables[name]
            before = len(self.findings)
            self._value(bicep, value, type_, path, seen | {name})
            for position in range(before, len(self.findings)):
                finding = self.findings[position]
                self.findings[position] = Finding(
                    finding.path, _line(node), f"{finding.message} (variable {name}, line {finding.line})"
                )

    # -- modules --

    def _module(self, bicep: BicepFile, element: Tree, symbols: dict[str, Symbol]) -> None:
        name = str(element.children[1])
        path_node = element.children[2].children[0]
        conditional, loop, body = self._unwrap(element.children[3])
        target = (bicep.path.parent / _unquote(str(path_node))).resolve()
        module_file = None
        if target.is_file():
            try:
                module_file = load(target)
            except ParseError as error:
                self._report(bicep, path_node, f"module {name}: {error}")
        else:
            self._report(bicep, path_node, f"module {name}: {target.name} does not exist")
        symbols[name] = Symbol(name, "module", conditional, loop, module=module_file)
        if module_file is None or not (isinstance(body, Tree) and body.data == "object"):
            return
        given: set[str] = set()
        params_node: Tree | Token = body
        for key, key_node, value in self._pairs(body):
            if key not in MODULE_KEYS:
                self._report(bicep, key_node, f"module {name}: '{key}' is not a property of a module")
            if key != "params" or not (isinstance(value, Tree) and value.data == "object"):
                continue
            params_node = key_node
            for param_name, param_node, param_value in self._pairs(value):
                given.add(param_name)
                param = module_file.params.get(param_name)
                if param is None:
                    close = difflib.get_close_matches(param_name, list(module_file.params), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    self._report(
                        bicep, param_node, f"module {name}: {target.name} has no parameter '{param_name}'{hint}"
                    )
                else:
                    self._argument(bicep, param_value, param, f"module {name}: parameter {param_name}")
        for param in module_file.params.values():
            if not param.optional and param.name not in given:
                self._report(bicep, params_node, f"module {name}: missing required parameter '{param.name}'")

    def _argument(self, bicep: BicepFile, node: Any, param: Param, path: str) -> None:
        known, literal = _literal(node)
        if known:
            if literal is None:
                return
            kind = _kind_of(literal)
            if param.kind is not None and kind != param.kind:
                self._report(bicep, node, f"{path}: expected {param.kind}, got {kind} {literal!r}")
            elif param.allowed is not None and literal not in param.allowed:
                self._report(bicep, node, f"{path}: {literal!r} is not one of {param.allowed!r} (@allowed)")
            else:
                bounds = param.bounds
                size = literal if kind == "int" else len(literal) if kind == "string" else None
                low = bounds.get("minValue" if kind == "int" else "minLength")
                high = bounds.get("maxValue" if kind == "int" else "maxLength")
                if size is not None and ((low is not None and size < low) or (high is not None and size > high)):
                    self._report(bicep, node, f"{path}: {literal!r} is outside [{low}, {high}]")
            return
        if isinstance(node, Tree) and node.data == "operator" and node.children[0].data == "conditional":
            for branch in node.children[0].children[1:]:
                self._argument(bicep, branch, param, path)
            return
        literal_kind = {"object": "object", "array": "array", "loop": "array"}.get(getattr(node, "data", ""))
        if param.kind is not None and literal_kind is not None and literal_kind != param.kind:
            self._report(bicep, node, f"{path}: expected {param.kind}, got {literal_kind}")

    # -- reads of other resources and modules --

    def _accesses(self, bicep: BicepFile, symbols: dict[str, Symbol]) -> None:
        chained: set[int] = set()
        for node in bicep.tree.iter_subtrees_topdown():
            if node.data != "property_accessor" or id(node) in chained:
                continue
            symbol = symbols.get(_identifier(node.children[0]) or "")
            if symbol is None or symbol.loop:
                continue
            # [(segment, read with `.?`, accessor node)] of `symbol.a.b.c`, nested to the right by pycep.
            segments: list[tuple[str, bool, Tree]] = []
            current = node
            while True:
                chained.add(id(current))
                left, right = current.children
                safe = "?" in bicep.text[_end(left) : _start(right)]
                inner = right.children[0] if isinstance(right, Tree) and right.data == "operator" else None
                if isinstance(inner, Tree) and inner.data == "property_accessor":
                    segments.append((_leftmost_identifier(inner.children[0]) or "", safe, current))
                    current = inner
                    continue
                segments.append((_leftmost_identifier(right) or "", safe, current))
                break
            self._check_access(bicep, symbol, segments)

    def _check_access(self, bicep: BicepFile, symbol: Symbol, segments: list[tuple[str, bool, Tree]]) -> None:
        if not segments:
            return
        first, safe, first_node = segments[0]
        needs_reference = symbol.kind == "module" or first not in RESOURCE_CONSTANTS
        if symbol.conditional and needs_reference and not safe:
            self._report(
                bicep,
                first_node,
                f"BCP318: {symbol.name} is conditional (null when its condition is false): "
                f"read it as {symbol.name}.?{first}",
            )
        names = [segment for segment, _, _ in segments]
        if symbol.kind == "module":
            if first not in ("outputs", "name"):
                self._report(bicep, first_node, f"module {symbol.name} has no property '{first}' (outputs, name)")
            elif first == "outputs" and len(names) > 1 and symbol.module and names[1] not in symbol.module.outputs:
                self._report(
                    bicep, first_node, f"module {symbol.name} ({symbol.module.path.name}) has no output '{names[1]}'"
                )
            return
        current = symbol.body_type
        walked = symbol.name
        for segment, _, node in segments:
            if current is None or not segment:
                return
            properties = current.properties()
            if properties is None:
                return
            if segment in properties:
                current = properties[segment][0]
            elif current.additional() is not None:
                current = current.additional()
            else:
                self._report(bicep, node, f"{walked}: {current.describe()} has no property '{segment}'")
                return
            walked = f"{walked}.{segment}"


def check(paths: list[Path], index: TypeIndex | None = None) -> list[Finding]:
    checker = Checker(index)
    for path in paths:
        checker.check_file(path)
    return checker.findings


# Public helpers for other checks on Bicep (tests/kusto reads the alert rules' queries with them).
pairs = Checker._pairs
literal = _literal
identifier = _identifier
