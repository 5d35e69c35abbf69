import { describe, expect, it } from "vitest";
import type { Meeting } from "./api/types";
import { attemptFor, checkForm, createBody, emptyForm, formFromMeeting, patchBody, rebase } from "./meetingForm";

const meeting: Meeting = {
  id: "m1",
  version: 3,
  title: "Standup",
  description: "",
  status: "scheduled",
  startsAt: "2031-01-05T08:00:00Z",
  endsAt: "2031-01-05T08:30:00Z",
  timeZone: "Europe/Berlin",
  access: "invited",
  owner: { id: "u1", name: "Alice" },
  myRole: "owner",
  provider: "dyte",
  providerMeetingId: "p1",
  createdAt: "2030-12-01T00:00:00Z",
  updatedAt: "2030-12-01T00:00:00Z",
};

describe("createBody", () => {
  it("sends the wall times with the chosen zone's offset", () => {
    const body = createBody({
      ...emptyForm("Europe/Berlin"),
      title: "  Standup ",
      starts: "2031-01-05T09:00",
      ends: "2031-01-05T09:30",
      access: "organization",
      recordOnStart: true,
      invitees: "bob@contoso.test, carol@contoso.test\ndan@contoso.test",
    });
    expect(body).toEqual({
      title: "Standup",
      timeZone: "Europe/Berlin",
      access: "organization",
      startsAt: "2031-01-05T09:00:00+01:00",
      endsAt: "2031-01-05T09:30:00+01:00",
      settings: { recordOnStart: true },
      invitees: [
        { email: "bob@contoso.test", role: "participant" },
        { email: "carol@contoso.test", role: "participant" },
        { email: "dan@contoso.test", role: "participant" },
      ],
    });
  });

  it("leaves out what was left empty", () => {
    expect(createBody({ ...emptyForm("UTC"), title: "Chat" })).toEqual({ title: "Chat", timeZone: "UTC" });
  });
});

describe("patchBody", () => {
  const before = formFromMeeting(meeting);

  it("shows the meeting's times as wall times in its zone", () => {
    expect(before.starts).toBe("2031-01-05T09:00");
    expect(before.ends).toBe("2031-01-05T09:30");
  });

  it("is empty when nothing changed", () => {
    expect(patchBody(before, { ...before })).toEqual({});
  });

  it("sends only what changed, and null for what was cleared", () => {
    expect(patchBody(before, { ...before, title: "Daily", ends: "" })).toEqual({ title: "Daily", endsAt: null });
  });

  it("resends both times in a new zone, keeping their wall times", () => {
    expect(patchBody(before, { ...before, timeZone: "America/New_York" })).toEqual({
      timeZone: "America/New_York",
      startsAt: "2031-01-05T09:00:00-05:00",
      endsAt: "2031-01-05T09:30:00-05:00",
    });
  });

  it("changes who may join", () => {
    expect(patchBody(before, { ...before, access: "organization" })).toEqual({ access: "organization" });
  });
});

describe("checkForm", () => {
  it("wants a title and an end after the start", () => {
    expect(checkForm({ ...emptyForm("UTC"), starts: "2031-01-05T09:00", ends: "2031-01-05T08:00" })).toEqual({
      "/title": "Give the meeting a title.",
      "/endsAt": "The end must come after the start.",
    });
    expect(checkForm({ ...emptyForm("UTC"), title: "x", ends: "2031-01-05T08:00" })).toEqual({
      "/startsAt": "Set a start when you set an end.",
    });
    expect(checkForm({ ...emptyForm("UTC"), title: "x" })).toEqual({});
  });
});

describe("attemptFor", () => {
  let made = 0;
  const newKey = () => `key-${++made}`;

  it("keeps the key while the body stays the same, and takes a new one when it changes", () => {
    const first = attemptFor({ title: "Sync" }, null, newKey);
    expect(attemptFor({ title: "Sync" }, first, newKey).key).toBe(first.key);
    const changed = attemptFor({ title: "Sync!" }, first, newKey);
    expect(changed.key).not.toBe(first.key);
    expect(attemptFor({ title: "Sync" }, changed, newKey).key).not.toBe(first.key);
  });
});

describe("rebase", () => {
  const base = formFromMeeting(meeting);

  it("keeps what the person changed on top of a version changed elsewhere in other fields", () => {
    const mine = { ...base, description: "Agenda first", access: "organization" as const };
    const latest = { ...base, title: "Standup (moved)" };
    const { values, lost } = rebase(base, mine, latest);
    expect(values).toEqual({ ...latest, description: "Agenda first", access: "organization" });
    expect(lost).toEqual([]);
    expect(patchBody(latest, values)).toEqual({ description: "Agenda first", access: "organization" });
  });

  it("lets the reloaded version win a field both changed, and names it", () => {
    const mine = { ...base, title: "Standup, day two", description: "Agenda first" };
    const latest = { ...base, title: "Standup (moved)" };
    const { values, lost } = rebase(base, mine, latest);
    expect(values.title).toBe("Standup (moved)");
    expect(values.description).toBe("Agenda first");
    expect(lost).toEqual(["title"]);
  });

  it("moves the schedule as one: a new start is not put into a zone changed elsewhere", () => {
    const mine = { ...base, starts: "2031-01-05T10:00" };
    const latest = { ...base, timeZone: "America/New_York", starts: "2031-01-05T03:00", ends: "2031-01-05T03:30" };
    const { values, lost } = rebase(base, mine, latest);
    expect(values).toEqual(latest);
    expect(lost).toEqual(["starts"]);
  });

  it("changes nothing when the person had changed nothing", () => {
    const latest = { ...base, title: "Standup (moved)" };
    expect(rebase(base, base, latest)).toEqual({ values: latest, lost: [] });
  });
});
