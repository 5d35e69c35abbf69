"""The Kusto queries of this repository, each with its place, and Kusto's own verdict on them.

Queries come from:
- `docs/**/*.md`: fenced blocks marked `kusto` (or `kql`), and inline code that starts with a table
  or a definition followed by `|` (such as `api | summarize ...`). A fenced block whose text ends
  with `;` holds only `let` definitions ("paste them first"): it is checked as the start of every
  later query of its file, and an error inside it is reported at its own lines;
- the log search alert rules in `infra/` (`Microsoft.Insights/scheduledQueryRules`): each
  criterion's `query`, a variable holding the text or `format(template, ...)` over one, with the
  placeholders filled from the arguments (a parameter's default value, as deployed by default).

check_kusto.js parses and analyzes them with @kusto/language-service-next against the Application
Insights tables in appinsights-schema.json; every diagnostic of severity Error is a finding.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lark import Tree

from tests.infra import bicep_types

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "check_kusto.js"
SCHEMA = HERE / "appinsights-schema.json"

FENCE = re.compile(r"^```(?:kusto|kql)[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
ANY_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")
DEFINED = re.compile(r"^\s*let\s+([A-Za-z_]\w*)\s*=", re.MULTILINE)


@dataclass(frozen=True)
class Query:
    path: Path
    line: int  # line of the query's first character
    text: str
    prelude: Query | None = None

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix() if self.path.is_relative_to(ROOT) else self.path}:{self.line}"

    def full_text(self) -> str:
        return f"{self.prelude.text}\n{self.text}" if self.prelude else self.text

    def place(self, offset: int) -> tuple[Path, int]:
        """(file, line) of an offset into full_text()."""
        if self.prelude is not None:
            if offset <= len(self.prelude.text):
                return self.prelude.place(offset)
            offset -= len(self.prelude.text) + 1
        return self.path, self.line + self.text.count("\n", 0, max(offset, 0))


def tables() -> set[str]:
    return set(json.loads(SCHEMA.read_text(encoding="utf-8"))["tables"])


def from_markdown(path: Path) -> list[Query]:
    text = path.read_text(encoding="utf-8")
    found: list[Query] = []
    prelude: Query | None = None
    for match in FENCE.finditer(text):
        body = match.group(1).rstrip("\n")
        query = Query(path, text.count("\n", 0, match.start(1)) + 1, body, prelude)
        if body.rstrip().endswith(";"):
            prelude = Query(path, query.line, body, prelude)
        else:
            found.append(query)
    # Inline code outside fenced blocks (blanked, keeping line numbers).
    prose = ANY_FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    names = tables() | (set(DEFINED.findall(prelude.full_text())) if prelude else set())
    starts = re.compile(rf"^\s*({'|'.join(sorted(names))})\s*\\?\|")
    for match in INLINE.finditer(prose):
        code = match.group(1)
        if starts.match(code):
            # In a Markdown table a pipe inside code is written `\|`.
            found.append(Query(path, prose.count("\n", 0, match.start(1)) + 1, code.replace("\\|", "|"), prelude))
    return found


def _format(template: str, arguments: list[str]) -> str:
    """ARM's format(): {n} placeholders, {{ and }} escapes."""

    def fill(match: re.Match[str]) -> str:
        return arguments[int(match.group(1))] if match.group(1) else match.group(0)[0]

    return re.sub(r"\{\{|\}\}|\{(\d+)\}", fill, template)


def _text_of(bicep: bicep_types.BicepFile, node) -> tuple[int, str] | None:
    """(first line, text) of a query value: a literal, a variable holding one, or format() over one."""
    known, value = bicep_types.literal(node)
    if known and isinstance(value, str):
        token = node.children[0]
        multi_line = str(token).startswith("'''")
        return token.line + (1 if multi_line and str(token)[3:4] == "\n" else 0), value
    name = bicep_types.identifier(node)
    if name in bicep.variables:
        return _text_of(bicep, bicep.variables[name])
    if isinstance(node, Tree) and node.data == "function" and str(node.children[0]) == "format(":
        template = _text_of(bicep, node.children[1])
        if template is None:
            return None
        arguments = []
        for argument in node.children[2:]:
            known, value = bicep_types.literal(argument)
            param = bicep.params.get(bicep_types.identifier(argument) or "")
            if not known and param is not None:
                known, value = param.default
            if not known:
                raise AssertionError(f"{bicep.path}:{argument.meta.line}: cannot fill a format() argument")
            arguments.append(str(value).lower() if isinstance(value, bool) else str(value))
        return template[0], _format(template[1], arguments)
    return None


def _query_nodes(node):
    for key, _, value in bicep_types.pairs(node):
        if key == "query":
            yield value
        elif isinstance(value, Tree) and value.data == "object":
            yield from _query_nodes(value)
        elif isinstance(value, Tree) and value.data == "array":
            for item in value.children:
                if isinstance(item, Tree) and item.data == "object":
                    yield from _query_nodes(item)


def from_bicep(path: Path) -> list[Query]:
    bicep = bicep_types.load(path.resolve())
    found: list[Query] = []
    for element in bicep.tree.children:
        if not (isinstance(element, Tree) and element.data == "resource"):
            continue
        if not str(element.children[2].children[0]).startswith("'Microsoft.Insights/scheduledQueryRules@"):
            continue
        _, _, body = bicep_types.Checker._unwrap(element.children[4])
        for node in _query_nodes(body):
            located = _text_of(bicep, node)
            if located is None:
                raise AssertionError(f"{path}:{node.meta.line}: a query this check cannot read")
            found.append(Query(path, located[0], located[1]))
    return found


def repository_queries() -> list[Query]:
    found: list[Query] = []
    for path in sorted((ROOT / "docs").rglob("*.md")):
        found.extend(from_markdown(path))
    for path in sorted((ROOT / "infra").rglob("*.bicep")):
        found.extend(from_bicep(path))
    return found


@dataclass(frozen=True)
class Diagnostic:
    query: Query
    severity: str
    code: str
    message: str
    path: Path
    line: int

    def render(self) -> str:
        shown = self.path.relative_to(ROOT).as_posix() if self.path.is_relative_to(ROOT) else str(self.path)
        return f"{shown}:{self.line}: {self.code} {self.message}"


def analyze(queries: list[Query]) -> list[Diagnostic]:
    """Every diagnostic Kusto's language service reports on these queries (one node process)."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not on the PATH (the Kusto check runs Kusto's language service on Node)")
    if not (ROOT / "node_modules" / "@kusto" / "language-service-next").is_dir():
        raise AssertionError("@kusto/language-service-next is not installed: run `make setup` (npm ci)")
    payload = {"schema": str(SCHEMA), "queries": [{"id": i, "text": q.full_text()} for i, q in enumerate(queries)]}
    result = subprocess.run(
        [node, str(SCRIPT)], input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"check_kusto.js failed ({result.returncode}):\n{result.stderr[-4000:]}")
    found = []
    for entry in json.loads(result.stdout):
        query = queries[entry["id"]]
        for d in entry["diagnostics"]:
            path, line = query.place(d["start"])
            found.append(Diagnostic(query, d["severity"], d["code"], d["message"], path, line))
    return found
