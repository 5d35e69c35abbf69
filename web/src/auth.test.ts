import { describe, expect, it } from "vitest";
import { withoutSignOutState } from "./auth";

describe("withoutSignOutState", () => {
  it("drops the state the sign-out return leaves in the address", () => {
    expect(withoutSignOutState("http://localhost:5173/?state=eyJpZCI6IjEifQ")).toBe("/");
    expect(withoutSignOutState("http://localhost:5173/meetings/m1?state=abc#x")).toBe("/meetings/m1#x");
  });

  it("leaves an address without one alone, MSAL's fragment included", () => {
    expect(withoutSignOutState("http://localhost:5173/meetings/m1")).toBeNull();
    expect(withoutSignOutState("http://localhost:5173/#code=abc&state=def")).toBeNull();
  });
});
