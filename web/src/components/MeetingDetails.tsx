import type { Meeting } from "../api/types";
import { roleSentence } from "../roles";
import { MeetingSchedule } from "./MeetingSchedule";
import { StatusBadge } from "./StatusBadge";

const ACCESS: Record<Meeting["access"], string> = {
  invited: "Only invited people",
  organization: "Anyone in the organization with the link; a host lets them in",
};

export function MeetingDetails({ meeting }: { meeting: Meeting }) {
  return (
    <dl className="details">
      <dt>Status</dt>
      <dd>
        <StatusBadge status={meeting.status} />
      </dd>
      <dt>When</dt>
      <dd>
        <MeetingSchedule meeting={meeting} />
      </dd>
      <dt>Who may join</dt>
      <dd>{ACCESS[meeting.access]}</dd>
      <dt>You</dt>
      <dd>{roleSentence(meeting)}</dd>
      {meeting.description && (
        <>
          <dt>Description</dt>
          <dd className="description">{meeting.description}</dd>
        </>
      )}
    </dl>
  );
}
