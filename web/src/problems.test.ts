import { describe, expect, it } from "vitest";
import { ApiError } from "./api/client";
import type { Problem } from "./api/types";
import { type Action, describeProblem } from "./problems";

const now = Date.parse("2031-01-05T08:00:00Z");

function problem(slug: string, status: number, extra: Partial<Problem> = {}): ApiError {
  return new ApiError({ type: `urn:meetings:problem:${slug}`, title: slug, status, ...extra });
}

function describe_(error: unknown, action: Action = "load") {
  return describeProblem(error, { action, now, viewerZone: "Europe/Berlin", locale: "en-GB" });
}

describe("describeProblem", () => {
  it("says when the join window opens, in the viewer's time", () => {
    const notice = describe_(
      problem("join-window", 409, { joinOpensAt: "2031-01-05T08:45:00Z", joinClosesAt: "2031-01-05T11:00:00Z" }),
      "join",
    );
    expect(notice.message).toBe("The meeting opens for joining at 09:45 your time.");
    expect(notice.remedy).toBe("retry");
  });

  it("says when joining closed", () => {
    const notice = describe_(problem("join-window", 409, { joinClosesAt: "2031-01-05T07:30:00Z" }), "join");
    expect(notice.message).toBe("Joining this meeting closed at 08:30 your time.");
  });

  it("names the day when the window opens on another day", () => {
    const notice = describe_(problem("join-window", 409, { joinOpensAt: "2031-01-07T08:45:00Z" }), "join");
    expect(notice.message).toBe("The meeting opens for joining at 09:45 on Tue 7 Jan your time.");
  });

  it("never reveals whether a meeting exists", () => {
    expect(describe_(problem("not-found", 404)).message).toBe(
      "This meeting does not exist or you were removed from it.",
    );
  });

  it("says a meeting was cancelled", () => {
    expect(describe_(problem("cancelled", 409), "join").message).toBe("This meeting was cancelled.");
  });

  it("asks to reload after an edit elsewhere", () => {
    const notice = describe_(problem("precondition-failed", 412), "edit");
    expect(notice.message).toMatch(/changed elsewhere.*Reload/);
    expect(notice.remedy).toBe("reload");
  });

  it("turns retryAfterSeconds into a wait", () => {
    const notice = describe_(problem("rate-limited", 429, { retryAfterSeconds: 12 }), "create");
    expect(notice.message).toBe("You did that many times in a short while. Try again in 12 seconds.");
    expect(notice.retryAfterSeconds).toBe(12);
    expect(describe_(problem("rate-limited", 429, { retryAfterSeconds: 90 })).message).toMatch(/in 2 minutes\.$/);
    expect(describe_(problem("rate-limited", 429, { retryAfterSeconds: 1 })).message).toMatch(/in 1 second\.$/);
  });

  it.each(["provider-rejected", "provider-unavailable", "provider-timeout", "unavailable", "internal"])(
    "offers to try %s again",
    (slug) => {
      const notice = describe_(problem(slug, 503, { retryAfterSeconds: 5 }), "join");
      expect(notice.remedy).toBe("retry");
      expect(notice.message).toMatch(/Try again in 5 seconds\.$/);
    },
  );

  it("keeps validation messages by field", () => {
    const notice = describe_(
      problem("validation", 400, { errors: [{ field: "/title", message: "must not be empty" }] }),
      "create",
    );
    expect(notice.fields).toEqual({ "/title": "must not be empty" });
  });

  it("says what a conflict means for the action", () => {
    expect(describe_(problem("conflict", 409), "end").message).toBe("Nothing is live in this meeting right now.");
    expect(describe_(problem("conflict", 409), "invite").message).toMatch(/limit of invitations/);
    expect(describe_(problem("conflict", 409), "create").message).toMatch(/already being created/);
  });

  it("says who may do what on 403", () => {
    expect(describe_(problem("forbidden", 403), "cancel").message).toBe("Only the meeting's owner can do that.");
    expect(describe_(problem("forbidden", 403), "invite").message).toMatch(/hosts may invite participants only/);
  });

  it("asks to sign in again on 401", () => {
    expect(describe_(problem("unauthorized", 401)).remedy).toBe("sign-in");
  });

  it("explains an answer that never came", () => {
    const notice = describe_(problem("network", 0));
    expect(notice.message).toMatch(/cannot be reached/);
    expect(notice.remedy).toBe("retry");
  });

  it("never shows a body it does not know", () => {
    const notice = describe_(problem("http-502", 502, { detail: '{"raw": "gateway"}' }));
    expect(notice.message).toBe("Something went wrong on our side. Try again in a moment.");
    expect(describe_(new TypeError("boom")).message).not.toMatch(/boom/);
  });
});
