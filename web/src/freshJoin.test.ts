import { describe, expect, it } from "vitest";
import { refreshDelay } from "./freshJoin";

const now = Date.parse("2031-01-05T08:00:00Z");

describe("refreshDelay", () => {
  it("never refreshes a token without an expiry", () => {
    expect(refreshDelay(null, now)).toBeNull();
  });

  it("refreshes five minutes early when the token lives long", () => {
    expect(refreshDelay("2031-01-05T10:00:00Z", now)).toBe(115 * 60_000);
  });

  it("refreshes with a fifth of the time left when it lives briefly", () => {
    expect(refreshDelay("2031-01-05T08:10:00Z", now)).toBe(8 * 60_000);
  });

  it("refreshes at once when the token has expired", () => {
    expect(refreshDelay("2031-01-05T07:59:00Z", now)).toBe(0);
  });
});
