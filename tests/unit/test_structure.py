"""The shape of `shared/` (docs/data-model.md, "The shape of the code"), checked on its source.

Four rules, each read from the modules' syntax trees (never by importing them):

- no import cycle among `shared/` modules;
- no role compared outside `shared/access.py`;
- no `submit_transaction` outside `shared/storage.py` (the unit of work is `storage.Batch`);
- no table or queue name, and no key prefix, spelled outside `shared/schema.py`.

Each checker returns violations naming the file and line. The tests at the bottom run each checker on
planted snippets in a temporary directory, so a checker that finds nothing is shown to be able to.

`KNOWN` lists what the checkers found when this file was written, to be fixed in `shared/`: a test fails
on any violation not listed, and on a listed one that is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

SHARED = ROOT / "shared"


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the directory checked, with its name: `shared/joins.py`
    line: int
    rule: str
    code: str  # the offending source, which (unlike the line) survives edits elsewhere in the file
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.code}" + (f" ({self.detail})" if self.detail else "")

    @property
    def key(self) -> tuple[str, str, str]:
        return self.path, self.rule, self.code


def modules(package: Path) -> Iterator[tuple[str, Path, ast.Module]]:
    """(dotted name, file, tree) of every module in the package, `__init__` as the package itself."""
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def relative(path: Path, package: Path) -> str:
    return path.relative_to(package.parent).as_posix()


def source(node: ast.AST) -> str:
    return ast.unparse(node)


# Import cycles -------------------------------------------------------------------------------------------


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (in functions too), but those under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(package: Path) -> dict[str, dict[str, tuple[str, int]]]:
    """module -> {imported module of the package: (file, line) of the first import of it}.

    `from pkg import name` names the module `pkg.name` when there is one, else `pkg` itself; relative
    imports are resolved against the importing module. Importing a submodule is an edge to it only, not
    to the packages above it (their `__init__` runs too, but an edge there would make every package that
    imports its own submodules a cycle).
    """
    found = list(modules(package))
    names = {name for name, _, _ in found}
    packages = {name for name, path, _ in found if path.name == "__init__.py"}
    graph: dict[str, dict[str, tuple[str, int]]] = {name: {} for name in names}
    for name, path, tree in found:
        own_package = name if name in packages else name.rpartition(".")[0]
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in names else base)
            for target in targets:
                while target and target not in names:
                    target = target.rpartition(".")[0]  # `import pkg.mod.Name`-like spellings
                if target and target != name:
                    first = graph[name].get(target, (relative(path, package), node.lineno))
                    graph[name][target] = min(first, (relative(path, package), node.lineno))
    return graph


def import_cycles(package: Path) -> list[Violation]:
    """One violation per strongly connected group of modules: a cycle through it, edge by edge."""
    graph = import_graph(package)
    violations = []
    for group in _strongly_connected(graph):
        if len(group) < 2:
            continue
        cycle = _cycle_through(graph, group)
        pairs = list(itertools.pairwise(cycle))
        edges = [graph[a][b] for a, b in pairs]
        path, line = edges[0]
        steps = [f"{a} imports {b} at {file}:{at}" for (a, b), (file, at) in zip(pairs, edges, strict=True)]
        violations.append(Violation(path, line, "import cycle", " -> ".join(cycle), "; ".join(steps)))
    return violations


def _strongly_connected(graph: dict[str, dict[str, tuple[str, int]]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; groups in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return sorted(groups)


def _cycle_through(graph: dict[str, dict[str, tuple[str, int]]], group: list[str]) -> list[str]:
    """The shortest cycle from the group's first module back to it, within the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    return [*paths[node], start]
                if child in members and child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


# Role comparisons ----------------------------------------------------------------------------------------

ROLE_VALUES = frozenset({"owner", "host", "participant", "guest"})
ROLE_MEMBERS = frozenset({"OWNER", "HOST", "PARTICIPANT", "GUEST"})
_COMPARING = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def _is_role(node: ast.AST) -> bool:
    """A role spelled out: "host", `Role.HOST` (or `access.Role.HOST`), or a literal collection of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in ROLE_VALUES
    if isinstance(node, ast.Attribute) and node.attr in ROLE_MEMBERS:
        owner = node.value
        return (isinstance(owner, ast.Name) and owner.id == "Role") or (
            isinstance(owner, ast.Attribute) and owner.attr == "Role"
        )
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_role(element) for element in node.elts)
    return False


def role_comparisons(package: Path, allowed: str = "access.py") -> list[Violation]:
    """Comparisons (`==`, `!=`, `in`, `not in`, `is`, `is not`) with a role spelled out, and `case` patterns
    matching one, anywhere in the package but its `allowed` module.

    Covered: a role string ("owner", "host", "participant", "guest") or a `Role` member on either side of
    a comparison, alone or in a literal tuple, list or set; `match` cases on them. Not covered (they cannot
    be told from other code without running it): a role held in a variable or constant first and compared
    later (`HOSTS = ("host",)` elsewhere), a role string built at run time, `str` methods (`.startswith`),
    and dictionaries keyed by roles (`{"host": ...}[role]`), which choose without comparing.
    """
    violations = []
    for _, path, tree in modules(package):
        if path.name == allowed and path.parent == package:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, _COMPARING) for op in node.ops):
                if any(_is_role(operand) for operand in (node.left, *node.comparators)):
                    violations.append(Violation(relative(path, package), node.lineno, "role compared", source(node)))
            elif isinstance(node, ast.match_case):
                patterns = [node.pattern, *getattr(node.pattern, "patterns", [])]
                if any(isinstance(p, ast.MatchValue) and _is_role(p.value) for p in patterns):
                    violations.append(
                        Violation(relative(path, package), node.pattern.lineno, "role matched", source(node.pattern))
                    )
    return violations


# Transactions --------------------------------------------------------------------------------------------


def transactions(package: Path, allowed: str = "storage.py") -> list[Violation]:
    """Calls of a `submit_transaction` attribute (any receiver) anywhere in the package but `allowed`."""
    violations = []
    for _, path, tree in modules(package):
        if path.name == allowed and path.parent == package:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "submit_transaction"
            ):
                violations.append(Violation(relative(path, package), node.lineno, "submit_transaction", source(node)))
    return violations


# Layout literals -----------------------------------------------------------------------------------------

# A key prefix: a short lower-case tag and the separator, at the start of a string (`m|`, `s|`, `closed|`,
# `q|mail`), or a one-letter tag between separators inside one (`|o|c|`, `|w|`).
_KEY_PREFIX = re.compile(r"^[a-z]{1,6}\||\|[a-z]\|")


def schema_names(schema: Path) -> set[str]:
    """The table and queue names `schema.py` defines: its module-level string constants spelled as a
    table (`Meetings`) or assigned to a name ending in `_QUEUE`."""
    names = set()
    for node in ast.parse(schema.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            targets = [target.id for target in node.targets if isinstance(target, ast.Name)]
            value = node.value.value
            if re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)*", value) or any(t.endswith("_QUEUE") for t in targets):
                names.add(value)
    return names


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are statements of their own (docstrings, bare notes)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def layout_literals(package: Path, names: set[str], allowed: str = "schema.py") -> list[Violation]:
    """String constants in the package (but `allowed`) that spell the storage layout:

    - a whole string equal to a table or queue name of `names` (`"Meetings"`, `"jobs"`);
    - a string, or a literal part of an f-string, starting with a key prefix (`"m|"`, `f"s|{key}"`,
      `"closed|"`, `"q|mail"`) or holding a one-letter key segment (`"|o|c|"`).

    Not flagged: docstrings and other strings standing as statements; a separator alone (`"|"`, as in
    `split("|")`); names and prefixes built at run time; text that merely contains a table name
    ("Meetings table"), so log lines and messages may name tables.
    """
    violations = []
    for _, path, tree in modules(package):
        if path.name == allowed and path.parent == package:
            continue
        skipped = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skipped:
                continue
            rule = (
                "table or queue name" if node.value in names else "key prefix" if _KEY_PREFIX.search(node.value) else ""
            )
            if rule:
                violations.append(Violation(relative(path, package), node.lineno, rule, repr(node.value)))
    return violations


# The rules on shared/ ------------------------------------------------------------------------------------

# What the checkers found in shared/ when this file was written: (file, rule, code). Fix the code, then
# drop its entry (a listed violation that is gone fails the test too).
KNOWN: dict[str, list[tuple[str, str, str]]] = {
    "import cycles": [],
    "role comparisons": [],
    "transactions": [],
    "layout literals": [],
}


def check(found: list[Violation], known: list[tuple[str, str, str]]) -> None:
    listed = Counter(known)
    new = []
    for violation in found:
        if listed[violation.key]:
            listed[violation.key] -= 1
        else:
            new.append(violation)
    gone = sorted(listed.elements())
    message = []
    if new:
        message.append("new violations:\n" + "\n".join(f"  {violation}" for violation in new))
    if gone:
        message.append("fixed, so drop from KNOWN:\n" + "\n".join(f"  {entry}" for entry in gone))
    assert not message, "\n".join(message)


def test_no_import_cycle_in_shared():
    check(import_cycles(SHARED), KNOWN["import cycles"])


def test_no_role_compared_outside_access():
    check(role_comparisons(SHARED), KNOWN["role comparisons"])


def test_no_transaction_outside_the_unit_of_work():
    check(transactions(SHARED), KNOWN["transactions"])


def test_no_table_name_or_key_prefix_outside_schema():
    check(layout_literals(SHARED, schema_names(SHARED / "schema.py")), KNOWN["layout literals"])


def test_the_schema_names_are_found():
    names = schema_names(SHARED / "schema.py")
    assert {"Meetings", "Invitations", "WebhookDeliveries", "Pending", "Expiring", "jobs", "mail-outbox"} <= names
    assert "work" not in names and "" not in names


# Each checker catches what it is for (planted snippets) ----------------------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    return package


def test_a_cycle_is_found_through_imports_in_functions_and_relative_ones(tmp_path):
    package = plant(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "import json\n\n\ndef later():\n    from .sub import c\n    return c\n",
            "sub/__init__.py": "",
            "sub/c.py": "from pkg.a import something\n",
            "d.py": "from pkg import a\n",  # into the cycle, not part of it
        },
    )
    (cycle,) = import_cycles(package)
    assert (cycle.path, cycle.line, cycle.code) == ("pkg/a.py", 1, "pkg.a -> pkg.b -> pkg.sub.c -> pkg.a")
    assert cycle.detail == (
        "pkg.a imports pkg.b at pkg/a.py:1; pkg.b imports pkg.sub.c at pkg/b.py:5; "
        "pkg.sub.c imports pkg.a at pkg/sub/c.py:1"
    )
    assert str(cycle).startswith("pkg/a.py:1: import cycle: pkg.a -> pkg.b")


def test_imports_for_type_checking_only_make_no_cycle(tmp_path):
    package = plant(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "import typing\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg import a\n"
            "if typing.TYPE_CHECKING:\n    import pkg.a\n",
        },
    )
    assert import_cycles(package) == []
    package = plant(tmp_path, {"b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n"
                               "    from pkg import a\n"})  # fmt: skip
    assert [violation.code for violation in import_cycles(package)] == ["pkg.a -> pkg.b -> pkg.a"]


def test_role_comparisons_are_found_outside_access_only(tmp_path):
    package = plant(
        tmp_path,
        {
            "access.py": 'def allows(role):\n    return role == "owner"\n',
            "x.py": "from pkg.access import Role\nfrom pkg import access\n\n\n"
            "def f(invite, role, known):\n"
            '    if invite.role == "host":\n'  # 6
            "        pass\n"
            '    if role in ("owner", "guest"):\n'  # 8
            "        pass\n"
            "    if Role.GUEST != role:\n"  # 10
            "        pass\n"
            "    if known.role is access.Role.PARTICIPANT:\n"  # 12
            "        pass\n"
            "    match role:\n"
            "        case Role.OWNER:\n"  # 15
            "            pass\n"
            "    presets = {'host': 1}\n"
            "    return presets['host'], {'role': 'guest'}, role == 'hostname', role < 'host'\n",
        },
    )
    found = role_comparisons(package)
    assert [(v.path, v.line) for v in found] == [("pkg/x.py", n) for n in (6, 8, 10, 12, 15)]
    assert found[0].code == "invite.role == 'host'" and found[-1].rule == "role matched"


def test_transactions_are_found_outside_storage_only(tmp_path):
    package = plant(
        tmp_path,
        {
            "storage.py": "def commit(table, ops):\n    return table.submit_transaction(ops)\n",
            "events/deliveries.py": "def receive(ctx, ops):\n    ctx.table('x').submit_transaction(ops)\n",
            "y.py": "submit_transaction = None\n\n\ndef f(t):\n    return t.submit(), getattr(t, 'x')\n",
        },
    )
    (found,) = transactions(package)
    assert (found.path, found.line) == ("pkg/events/deliveries.py", 2)
    assert found.code == "ctx.table('x').submit_transaction(ops)"


def test_table_names_and_key_prefixes_are_found_outside_schema_only(tmp_path):
    package = plant(
        tmp_path,
        {
            "schema.py": 'MEETINGS = "Meetings"\nJOBS_QUEUE = "jobs"\n\n\ndef key(m):\n    return f"m|{m}"\n',
            "z.py": '"""Rows `m|{meeting}|f|...` in the Meetings table."""\n\n\n'
            "def f(ctx, meeting_id, key):\n"
            '    """Reads `s|...` rows."""\n'
            '    ctx.table("Meetings")\n'  # 6
            '    row = f"m|{meeting_id}"\n'  # 7
            '    low = "s|" + key\n'  # 8
            '    other = f"{meeting_id}|o|c|{key}"\n'  # 9
            '    closed = "closed|" + key\n'  # 10
            '    ctx.queue("jobs")\n'  # 11
            '    parts = key.split("|", 1), "|".join(key), f"{key}|{key}", "a Meetings row", "log: %s|%s"\n'
            '    return row, low, other, closed, parts, {"PartitionKey": "work"}\n',
        },
    )
    found = layout_literals(package, schema_names(package / "schema.py"))
    assert [(v.line, v.rule) for v in found] == [
        (6, "table or queue name"),
        (7, "key prefix"),
        (8, "key prefix"),
        (9, "key prefix"),
        (10, "key prefix"),
        (11, "table or queue name"),
    ]
    assert all(v.path == "pkg/z.py" for v in found)


def test_the_baseline_fails_on_a_new_violation_and_on_a_fixed_one():
    found = Violation("shared/x.py", 7, "role compared", "role == 'host'")
    with pytest.raises(AssertionError, match=r"new violations:\s+shared/x\.py:7: role compared: role == 'host'"):
        check([found, found], [found.key])  # listed once, found twice
    with pytest.raises(AssertionError, match="fixed, so drop from KNOWN"):
        check([], [found.key])
    check([found, found], [found.key, found.key])


@pytest.mark.parametrize("name", ["import cycles", "role comparisons", "transactions", "layout literals"])
def test_known_violations_are_reported_by_file_and_line(name):
    """The baseline stays readable: every entry names a file of shared/ and the code found there."""
    for path, rule, code in KNOWN[name]:
        assert (ROOT / path).is_file() and rule and code
