// The API's types, generated from the repo's openapi.yaml (`npm run types` writes schema.d.ts).
import type { components } from "./schema";

type Schemas = components["schemas"];

export type Access = Schemas["Meeting"]["access"];
export type Role = Schemas["Meeting"]["myRole"];
// Besides the API's own problem types, the client makes problems for answers that never came or were
// not problems (a gateway's page): see ApiError.
export type Problem = Omit<Schemas["Problem"], "type"> & { type: string };
export type Me = Schemas["Me"];
export type Export = Schemas["Export"];
export type Meeting = Schemas["Meeting"];
export type MeetingCreate = Schemas["MeetingCreate"];
export type MeetingPatch = Schemas["MeetingPatch"];
export type Invitee = Schemas["Invitee"];
export type Invite = Schemas["Invite"];
export type InviteRole = Invite["role"];
export type Join = Schemas["Join"];
export type Session = Schemas["Session"];
export type Recording = Schemas["Recording"];
export type MeetingScope = "all" | "owned" | "invited";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
