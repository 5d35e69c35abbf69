// Parses and analyzes Kusto queries with Kusto's own language service (@kusto/language-service-next,
// pinned in the root package.json) against the Application Insights tables in appinsights-schema.json.
//
// Input on stdin: {"queries": [{"id": "...", "text": "..."}]}. Output on stdout: one JSON array with,
// per query, {"id", "diagnostics": [{"severity", "code", "message", "start", "length"}]} (offsets
// into the query's text). tests/kusto/test_kusto.py finds the queries and maps offsets to lines.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

require("@kusto/language-service-next/bridge");
require("@kusto/language-service-next/Kusto.Language.Bridge");

/* global Kusto, Bridge */
const Symbols = Kusto.Language.Symbols;

function globalsFor(schemaPath) {
  const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
  const tables = Object.entries(schema.tables).map(([table, columns]) => {
    const symbols = Object.entries(columns).map(([column, type]) => {
      const scalar = Symbols.ScalarTypes.GetSymbol(type);
      if (!scalar) throw new Error(`${schemaPath}: ${table}.${column}: unknown type ${type}`);
      return new Symbols.ColumnSymbol(column, scalar, null, null, null, null);
    });
    return new Symbols.TableSymbol.$ctor4(table, symbols);
  });
  const database = new Symbols.DatabaseSymbol.ctor("applicationinsights", tables);
  return Kusto.Language.GlobalState.Default.WithDatabase(database);
}

function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const globals = globalsFor(input.schema || path.join(__dirname, "appinsights-schema.json"));
  const results = input.queries.map(({ id, text }) => {
    const code = Kusto.Language.KustoCode.ParseAndAnalyze(text, globals);
    const diagnostics = Bridge.toArray(code.GetDiagnostics()).map((d) => ({
      severity: String(d.Severity),
      code: d.Code,
      message: d.Message,
      start: d.Start,
      length: d.Length,
    }));
    return { id, diagnostics };
  });
  process.stdout.write(JSON.stringify(results));
}

main();
