import type { Meeting, Role } from "./api/types";

export const isOrganizer = (role: Role) => role === "owner" || role === "host";

export function roleSentence(meeting: Pick<Meeting, "myRole" | "owner">): string {
  switch (meeting.myRole) {
    case "owner":
      return "You organize this meeting";
    case "host":
      return `You are a host · organized by ${meeting.owner.name}`;
    case "participant":
      return `You are invited · organized by ${meeting.owner.name}`;
    case "guest":
      return `You are not invited: anyone in the organization may ask to join · organized by ${meeting.owner.name}`;
  }
}
