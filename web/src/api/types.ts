// The API's types, generated from the repo's openapi.yaml (`npm run types` writes schema.d.ts).
import type { components } from "./schema";

type Schemas = components["schemas"];

// The HTTP contract (shared/contract/http-api.md) already names these; openapi.yaml gains them with
// the backend change that implements them. Each overlay goes once the generated type has the field.
export type Access = "invited" | "organization";
export type Role = "owner" | "host" | "participant" | "guest";

export type Problem = Schemas["Problem"];
export type Me = Schemas["Me"];
export type Export = Schemas["Export"];
export type Meeting = Omit<Schemas["Meeting"], "myRole"> & { myRole: Role; access?: Access };
export type MeetingCreate = Schemas["MeetingCreate"] & { access?: Access };
export type MeetingPatch = Schemas["MeetingPatch"] & { access?: Access };
export type Invitee = Schemas["Invitee"];
export type Invite = Schemas["Invite"];
export type InviteRole = Invite["role"];
export type Join = Omit<Schemas["Join"], "role"> & { role: Role };
export type Session = Schemas["Session"];
export type Recording = Schemas["Recording"] & { stored?: boolean };
export type MeetingScope = "all" | "owned" | "invited";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
