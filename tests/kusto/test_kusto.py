"""Every Kusto query in docs/ and in the alert rules in infra/, parsed and analyzed by Kusto's own
language service against the Application Insights schema (tests/kusto/queries.py), and the check
itself proven on planted mistakes."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import pytest

from tests.kusto import queries


@functools.cache
def _repository() -> tuple[list[queries.Query], list[queries.Diagnostic]]:
    found = queries.repository_queries()
    return found, queries.analyze(found)


def test_every_query_has_no_error():
    _, diagnostics = _repository()
    errors = [d.render() for d in diagnostics if d.severity == "Error"]
    assert not errors, "\n".join(errors)


def test_the_check_covers_the_docs_and_every_alert_rule():
    found, _ = _repository()
    places = {q.path.relative_to(queries.ROOT).as_posix() for q in found}
    assert {"docs/operations.md", "infra/modules/alerts.bicep"} <= places
    alerts = (queries.ROOT / "infra" / "modules" / "alerts.bicep").read_text(encoding="utf-8")
    rules = alerts.count("'Microsoft.Insights/scheduledQueryRules@")
    assert rules >= 3
    assert sum(q.path.name == "alerts.bicep" for q in found) == rules
    docs = sum(q.path.name == "operations.md" for q in found)
    fenced = (queries.ROOT / "docs" / "operations.md").read_text(encoding="utf-8").count("```kusto")
    assert docs >= fenced - 1  # every fenced block but the definitions, which precede each query


def test_alert_templates_are_filled_from_the_parameters_defaults():
    found, _ = _repository()
    silence = next(q for q in found if q.path.name == "alerts.bicep" and "let silence" in q.text)
    assert silence.text.startswith("let silence = 60m;\nlet lookback = 12h;")
    assert "{0}" not in silence.text and "{1}" not in silence.text


def test_the_schema_names_its_source_and_has_the_tables_the_queries_use():
    schema = json.loads(queries.SCHEMA.read_text(encoding="utf-8"))
    assert schema["source"]["repository"] == "MicrosoftDocs/azure-monitor-docs"
    expected = {"traces", "requests", "exceptions", "customMetrics", "dependencies", "customEvents"}
    assert expected <= set(schema["tables"])
    assert schema["tables"]["traces"]["message"] == "string"
    assert schema["tables"]["requests"]["resultCode"] == "string"


# --- Planted mistakes ------------------------------------------------------------------------------
# All planted files are analyzed in one run of the language service (loading it takes seconds).

DOC = """\
# Planted

Definitions:

```kusto
let lines = traces
    | extend m = parse_json(message);
```

A query:

```kusto
lines
QUERY
```

Inline: `lines | where isnotempty(m.operation) | count`.
"""

PLANTED_DOCS = {
    "reserved word": DOC.replace("QUERY", "| summarize count() by kind = tostring(m.kind)"),
    "unknown column": DOC.replace("QUERY", '| where mesage has "x"'),
    "syntax": DOC.replace("QUERY", "| summarize count() by bin(timestamp 5m)"),
    "int compared with a string": DOC.replace("QUERY", '| where toint(m.status) >= "500"'),
    "definitions": DOC.replace("parse_json(message)", "parse_json(mesage)").replace("QUERY", "| count"),
    "correct": DOC.replace("QUERY", "| summarize count() by ['kind'] = tostring(m.kind)"),
}

PLANTED_ALERTS = """\
param threshold int = 5
var template = \'\'\'
requests
| summarize failed = countif(toint(resultcode) >= 500)
| where failed > {0}
\'\'\'
resource rule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'rule'
  location: 'westeurope'
  properties: {
    criteria: {
      allOf: [
        {
          query: format(template, threshold)
          timeAggregation: 'Count'
        }
      ]
    }
  }
}
"""


@functools.cache
def _planted() -> tuple[Path, dict[str, list[str]], list[queries.Query]]:
    """(folder, errors per planted file as 'name:line: code', the alert file's queries)."""
    folder = Path(tempfile.mkdtemp(prefix="kusto-planted-"))
    found: list[queries.Query] = []
    for case, markdown in PLANTED_DOCS.items():
        path = folder / f"{case.replace(' ', '-')}.md"
        path.write_text(markdown, encoding="utf-8")
        found.extend(queries.from_markdown(path))
    alerts = folder / "alerts.bicep"
    alerts.write_text(PLANTED_ALERTS, encoding="utf-8")
    alert_queries = queries.from_bicep(alerts)
    found.extend(alert_queries)
    errors: dict[str, list[str]] = {path.name: [] for path in folder.iterdir()}
    for d in queries.analyze(found):
        if d.severity == "Error":
            errors[d.path.name].append(f"{d.path.name}:{d.line}: {d.code}")
    return folder, errors, alert_queries


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("reserved word", ":14: KS228"),
        ("unknown column", ":14: KS142"),
        ("syntax", ":14: "),
        ("int compared with a string", ":14: "),
    ],
)
def test_planted_mistake_is_reported_at_its_line(case: str, expected: str):
    name = f"{case.replace(' ', '-')}.md"
    errors = _planted()[1][name]
    assert errors and all(error.startswith(name + expected) for error in errors), errors


def test_error_in_the_definitions_is_reported_at_their_own_line():
    # Once for the fenced query and once for the inline one, both at the definitions' line.
    assert _planted()[1]["definitions.md"] == ["definitions.md:7: KS142", "definitions.md:7: KS142"]


def test_correct_queries_pass():
    assert _planted()[1]["correct.md"] == []


def test_alert_query_with_a_mistake_is_reported_in_the_bicep_file():
    _, errors, (query,) = _planted()
    assert query.text == "requests\n| summarize failed = countif(toint(resultcode) >= 500)\n| where failed > 5\n"
    assert errors["alerts.bicep"] == ["alerts.bicep:4: KS142"]
