import { describe, expect, it } from "vitest";
import {
  describeSchedule,
  formatDuration,
  formatMoment,
  isoToWallTime,
  offsetMinutes,
  wallTimeToIso,
} from "./times";

describe("wallTimeToIso", () => {
  it("gives a winter wall time Berlin's standard offset", () => {
    expect(wallTimeToIso("2031-01-05T09:00", "Europe/Berlin")).toBe("2031-01-05T09:00:00+01:00");
  });

  it("gives a summer wall time the daylight offset", () => {
    expect(wallTimeToIso("2031-07-05T09:00", "Europe/Berlin")).toBe("2031-07-05T09:00:00+02:00");
  });

  it("handles zones west of UTC and half-hour offsets", () => {
    expect(wallTimeToIso("2031-01-05T09:00", "America/New_York")).toBe("2031-01-05T09:00:00-05:00");
    expect(wallTimeToIso("2031-01-05T09:00", "Asia/Kolkata")).toBe("2031-01-05T09:00:00+05:30");
    expect(wallTimeToIso("2031-01-05T09:00", "UTC")).toBe("2031-01-05T09:00:00+00:00");
  });

  it("moves a time the clocks skip forward by the gap", () => {
    // Berlin springs from 02:00 to 03:00 on 30 March 2031.
    expect(wallTimeToIso("2031-03-30T02:30", "Europe/Berlin")).toBe("2031-03-30T03:30:00+02:00");
  });

  it("takes the first of a wall time that happens twice", () => {
    // Berlin falls back from 03:00 to 02:00 on 26 October 2031.
    expect(wallTimeToIso("2031-10-26T02:30", "Europe/Berlin")).toBe("2031-10-26T02:30:00+02:00");
  });

  it("refuses what is not a datetime-local value", () => {
    expect(() => wallTimeToIso("5 Jan 2031", "UTC")).toThrow(RangeError);
  });
});

describe("isoToWallTime", () => {
  it("reads an instant as the wall time of the given zone", () => {
    expect(isoToWallTime("2031-01-05T08:00:00Z", "Europe/Berlin")).toBe("2031-01-05T09:00");
    expect(isoToWallTime("2031-01-05T08:00:00Z", "America/New_York")).toBe("2031-01-05T03:00");
  });

  it("round-trips with wallTimeToIso", () => {
    const iso = wallTimeToIso("2031-11-02T01:15", "America/Los_Angeles");
    expect(isoToWallTime(iso, "America/Los_Angeles")).toBe("2031-11-02T01:15");
  });
});

describe("offsetMinutes", () => {
  it("knows daylight saving time", () => {
    expect(offsetMinutes(Date.parse("2031-01-05T08:00:00Z"), "Europe/London")).toBe(0);
    expect(offsetMinutes(Date.parse("2031-07-05T08:00:00Z"), "Europe/London")).toBe(60);
  });
});

describe("describeSchedule", () => {
  const meeting = { startsAt: "2031-01-05T08:00:00Z", endsAt: "2031-01-05T09:00:00Z", timeZone: "Europe/Berlin" };

  it("shows the meeting's zone, and the viewer's when it reads differently", () => {
    const schedule = describeSchedule(meeting, "America/New_York", "en-GB");
    expect(schedule?.inMeetingZone).toMatch(/5 Jan 2031.*09:00.*10:00 \(Europe\/Berlin\)/);
    expect(schedule?.inViewerZone).toMatch(/5 Jan 2031.*03:00.*04:00 your time \(America\/New York\)/);
  });

  it("shows one line when the viewer's zone reads the same", () => {
    expect(describeSchedule(meeting, "Europe/Paris", "en-GB")?.inViewerZone).toBeNull();
  });

  it("has nothing to say about a meeting without a start", () => {
    expect(describeSchedule({ ...meeting, startsAt: null, endsAt: null }, "UTC")).toBeNull();
  });

  it("shows a start without an end", () => {
    const schedule = describeSchedule({ ...meeting, endsAt: null }, "UTC", "en-GB");
    expect(schedule?.inMeetingZone).toBe("5 Jan 2031, 09:00 (Europe/Berlin)");
    expect(schedule?.inViewerZone).toBe("5 Jan 2031, 08:00 your time (UTC)");
  });
});

describe("formatMoment", () => {
  const now = Date.parse("2031-01-05T07:00:00Z");

  it("gives the time alone when it is today where the viewer is", () => {
    expect(formatMoment("2031-01-05T08:45:00Z", "Europe/Berlin", now, "en-GB")).toBe("09:45");
  });

  it("adds the day when it is another day", () => {
    expect(formatMoment("2031-01-06T08:45:00Z", "Europe/Berlin", now, "en-GB")).toBe("09:45 on Mon 6 Jan");
  });

  it("adds the year when it is another year", () => {
    expect(formatMoment("2032-01-06T08:45:00Z", "UTC", now, "en-GB")).toBe("08:45 on Tue, 6 Jan 2032");
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0 s"],
    [42, "42 s"],
    [125, "2 min 5 s"],
    [900, "15 min"],
    [3600, "1 h"],
    [3725, "1 h 2 min"],
  ])("%i seconds read %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});
