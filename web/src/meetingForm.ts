// What the create and edit form holds, and the request bodies made from it.
import type { Access, Meeting, MeetingCreate, MeetingPatch } from "./api/types";
import { isoToWallTime, wallTimeToIso } from "./times";

export interface FormValues {
  title: string;
  description: string;
  /** `datetime-local` values, wall times in `timeZone`; empty for none. */
  starts: string;
  ends: string;
  timeZone: string;
  access: Access;
  recordOnStart: boolean;
  /** Addresses to invite as participants, separated by spaces, commas or new lines (create only). */
  invitees: string;
}

export function emptyForm(timeZone: string): FormValues {
  return {
    title: "",
    description: "",
    starts: "",
    ends: "",
    timeZone,
    access: "invited",
    recordOnStart: false,
    invitees: "",
  };
}

export function formFromMeeting(meeting: Meeting): FormValues {
  return {
    title: meeting.title,
    description: meeting.description ?? "",
    starts: meeting.startsAt ? isoToWallTime(meeting.startsAt, meeting.timeZone) : "",
    ends: meeting.endsAt ? isoToWallTime(meeting.endsAt, meeting.timeZone) : "",
    timeZone: meeting.timeZone,
    access: meeting.access,
    recordOnStart: false,
    invitees: "",
  };
}

export function inviteeAddresses(text: string): string[] {
  return text.split(/[\s,;]+/).filter(Boolean);
}

/** Mistakes the form can see before sending, keyed like the API's JSON Pointers. */
export function checkForm(values: FormValues): Record<string, string> {
  const problems: Record<string, string> = {};
  if (values.title.trim() === "") problems["/title"] = "Give the meeting a title.";
  if (values.ends && !values.starts) problems["/startsAt"] = "Set a start when you set an end.";
  if (values.starts && values.ends && values.ends <= values.starts) {
    problems["/endsAt"] = "The end must come after the start.";
  }
  return problems;
}

const instant = (local: string, zone: string) => (local ? wallTimeToIso(local, zone) : null);

export function createBody(values: FormValues): MeetingCreate {
  const body: MeetingCreate = { title: values.title.trim(), timeZone: values.timeZone };
  // `invited` is the API's default: sent only when it differs, like every other optional field.
  if (values.access !== "invited") body.access = values.access;
  if (values.description.trim()) body.description = values.description.trim();
  const startsAt = instant(values.starts, values.timeZone);
  const endsAt = instant(values.ends, values.timeZone);
  if (startsAt) body.startsAt = startsAt;
  if (endsAt) body.endsAt = endsAt;
  if (values.recordOnStart) body.settings = { recordOnStart: true };
  const invitees = inviteeAddresses(values.invitees);
  if (invitees.length) body.invitees = invitees.map((email) => ({ email, role: "participant" }));
  return body;
}

/** A JSON merge patch of what changed (`null` clears); a new zone resends the times in it. */
export function patchBody(before: FormValues, after: FormValues): MeetingPatch {
  const patch: MeetingPatch = {};
  if (after.title.trim() !== before.title) patch.title = after.title.trim();
  if (after.description.trim() !== before.description) patch.description = after.description.trim() || null;
  const zoneChanged = after.timeZone !== before.timeZone;
  if (zoneChanged) patch.timeZone = after.timeZone;
  if (zoneChanged || after.starts !== before.starts) patch.startsAt = instant(after.starts, after.timeZone);
  if (zoneChanged || after.ends !== before.ends) patch.endsAt = instant(after.ends, after.timeZone);
  if (after.access !== before.access) patch.access = after.access;
  return patch;
}

// What an edit changes together: the schedule's times are wall times in its zone, so they go as one.
const EDITED_TOGETHER: (keyof FormValues)[][] = [["title"], ["description"], ["access"], ["timeZone", "starts", "ends"]];

export interface Rebased {
  values: FormValues;
  /** The fields the person changed that were changed elsewhere too: the reloaded version's values won. */
  lost: (keyof FormValues)[];
}

/**
 * The person's unsaved form on top of the version reloaded after "changed elsewhere" (412): what they
 * changed since `base` (the version they started from) stays where nobody else changed it; where both
 * did, the reloaded version wins and the field is named in `lost`.
 */
export function rebase(base: FormValues, mine: FormValues, latest: FormValues): Rebased {
  const values = { ...latest };
  const lost: (keyof FormValues)[] = [];
  const differ = (a: FormValues, b: FormValues, fields: (keyof FormValues)[]) => fields.some((name) => a[name] !== b[name]);
  for (const fields of EDITED_TOGETHER) {
    if (!differ(base, mine, fields)) continue;
    if (differ(base, latest, fields)) lost.push(...fields.filter((name) => base[name] !== mine[name]));
    else Object.assign(values, Object.fromEntries(fields.map((name) => [name, mine[name]])));
  }
  return { values, lost };
}

export interface Attempt {
  body: string;
  key: string;
}

/**
 * The Idempotency-Key for sending `body`: the last attempt's when the body is the same (a retry after
 * a lost answer replays the first answer instead of creating a second meeting), a new one otherwise
 * (the API answers 409 to a key reused with a different body).
 */
export function attemptFor(body: MeetingCreate, last: Attempt | null, newKey: () => string): Attempt {
  const text = JSON.stringify(body);
  return last?.body === text ? last : { body: text, key: newKey() };
}
