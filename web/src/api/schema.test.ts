// The committed schema.d.ts is what the code was type-checked against: it must be what openapi.yaml
// generates now. When this fails, run `npm --prefix web run types` and fix what the type check finds.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";
import { expect, it } from "vitest";

const document = new URL("../../../openapi.yaml", import.meta.url);
const generated = new URL("./schema.d.ts", import.meta.url);

it("schema.d.ts is generated from the current openapi.yaml", async () => {
  // The same options as `npm run types` (package.json).
  const fresh = COMMENT_HEADER + astToString(await openapiTS(document, { defaultNonNullable: false }));
  expect(readFileSync(fileURLToPath(generated), "utf8")).toBe(fresh);
});
