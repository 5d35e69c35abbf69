import { describe, expect, it } from "vitest";
import { match, paths } from "./router";

describe("match", () => {
  it.each([
    ["/", { screen: "meetings" }],
    ["/meetings/new", { screen: "new" }],
    ["/account", { screen: "account" }],
    ["/meetings/m1", { screen: "meeting", id: "m1" }],
    ["/meetings/m1/", { screen: "meeting", id: "m1" }],
    ["/meetings/m1/edit", { screen: "edit", id: "m1" }],
    ["/meetings/m1/call", { screen: "call", id: "m1" }],
    ["/meetings/m1/other", { screen: "unknown" }],
    ["/elsewhere", { screen: "unknown" }],
  ])("%s", (path, route) => {
    expect(match(path)).toEqual(route);
  });

  it("reads back the ids it writes", () => {
    expect(match(paths.call("a b/c"))).toEqual({ screen: "call", id: "a b/c" });
  });
});
