// Times as people read them: a meeting's schedule in its own zone and in the viewer's, and the
// conversion between what a form shows (a wall time in a chosen zone) and the API's RFC 3339.

export function viewerTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function timeZoneNames(): string[] {
  const names = Intl.supportedValuesOf("timeZone");
  return names.includes("UTC") ? names : ["UTC", ...names];
}

export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function wallTime(instant: number, zone: string): WallTime {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(instant));
  const part = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value);
  return {
    year: part("year"),
    month: part("month"),
    day: part("day"),
    hour: part("hour"),
    minute: part("minute"),
    second: part("second"),
  };
}

/** The zone's offset from UTC at an instant, in minutes (Berlin in winter: 60). */
export function offsetMinutes(instant: number, zone: string): number {
  const wall = wallTime(instant, zone);
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  return Math.round((asUtc - Math.floor(instant / 1000) * 1000) / 60000);
}

const pad = (value: number, width = 2) => String(value).padStart(width, "0");

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const absolute = Math.abs(minutes);
  return `${sign}${pad(Math.floor(absolute / 60))}:${pad(absolute % 60)}`;
}

const LOCAL_INPUT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/;

/**
 * A form's wall time (`2031-01-05T09:00`, as `<input type="datetime-local">` gives it) in `zone`, as
 * RFC 3339 with that zone's offset. A wall time the clocks skip (a spring-forward gap) moves forward
 * by the gap, as calendars do.
 */
export function wallTimeToIso(local: string, zone: string): string {
  const match = LOCAL_INPUT.exec(local);
  if (!match) throw new RangeError(`not a local date and time: ${local}`);
  const [year, month, day, hour, minute] = match.slice(1).map(Number) as [number, number, number, number, number];
  const asUtc = Date.UTC(year, month - 1, day, hour, minute);
  const before = offsetMinutes(asUtc - 86400000, zone);
  const after = offsetMinutes(asUtc + 86400000, zone);
  // Try the offsets in force around that day; keep the one whose wall time comes back unchanged.
  for (const offset of [before, after]) {
    const instant = asUtc - offset * 60000;
    if (offsetMinutes(instant, zone) === offset) return isoInZone(instant, zone);
  }
  return isoInZone(asUtc - before * 60000, zone);
}

/** An instant as RFC 3339 in `zone`'s wall time and offset (`2031-01-05T09:00:00+01:00`). */
export function isoInZone(instant: number, zone: string): string {
  const wall = wallTime(instant, zone);
  return (
    `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)}T${pad(wall.hour)}:${pad(wall.minute)}:${pad(wall.second)}` +
    offsetText(offsetMinutes(instant, zone))
  );
}

/** RFC 3339 as the `datetime-local` value of its wall time in `zone`. */
export function isoToWallTime(iso: string, zone: string): string {
  const wall = wallTime(Date.parse(iso), zone);
  return `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)}T${pad(wall.hour)}:${pad(wall.minute)}`;
}

function dateTimeFormat(locale: string | undefined, zone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone: zone });
}

function zoneLabel(zone: string): string {
  return zone.replaceAll("_", " ");
}

function formatSpan(startsAt: string, endsAt: string | null, zone: string, locale?: string): string {
  const format = dateTimeFormat(locale, zone);
  const start = new Date(startsAt);
  return endsAt ? format.formatRange(start, new Date(endsAt)) : format.format(start);
}

export interface Schedule {
  /** In the meeting's own zone, with its name. */
  inMeetingZone: string;
  /** In the viewer's zone, when that reads differently; null otherwise. */
  inViewerZone: string | null;
}

export function describeSchedule(
  meeting: { startsAt: string | null; endsAt: string | null; timeZone: string },
  viewerZone: string,
  locale?: string,
): Schedule | null {
  if (!meeting.startsAt) return null;
  const zone = isTimeZone(meeting.timeZone) ? meeting.timeZone : "UTC";
  const there = formatSpan(meeting.startsAt, meeting.endsAt, zone, locale);
  const here = formatSpan(meeting.startsAt, meeting.endsAt, viewerZone, locale);
  return {
    inMeetingZone: `${there} (${zoneLabel(zone)})`,
    inViewerZone: here === there ? null : `${here} your time (${zoneLabel(viewerZone)})`,
  };
}

/** A moment in the viewer's zone: the time alone when it is today, else with its date. */
export function formatMoment(iso: string, viewerZone: string, now: number, locale?: string): string {
  const instant = Date.parse(iso);
  const day = (at: number) => {
    const wall = wallTime(at, viewerZone);
    return `${wall.year}-${wall.month}-${wall.day}`;
  };
  const time = new Intl.DateTimeFormat(locale, { timeStyle: "short", timeZone: viewerZone }).format(instant);
  if (day(instant) === day(now)) return time;
  const date = new Intl.DateTimeFormat(locale, {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: wallTime(instant, viewerZone).year === wallTime(now, viewerZone).year ? undefined : "numeric",
    timeZone: viewerZone,
  }).format(instant);
  return `${time} on ${date}`;
}

/** An instant with its date, in the viewer's zone: for lists of sessions and recordings. */
export function formatInstant(iso: string, viewerZone: string, locale?: string): string {
  return dateTimeFormat(locale, viewerZone).format(new Date(iso));
}

export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (hours > 0) return minutes > 0 ? `${hours} h ${minutes} min` : `${hours} h`;
  if (minutes > 0) return rest > 0 && minutes < 10 ? `${minutes} min ${rest} s` : `${minutes} min`;
  return `${rest} s`;
}
