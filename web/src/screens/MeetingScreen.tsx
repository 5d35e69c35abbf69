import { useRef, useState } from "react";
import { AttendanceSection } from "../components/AttendanceSection";
import { InviteSection } from "../components/InviteSection";
import { MeetingActions } from "../components/MeetingActions";
import { MeetingDetails } from "../components/MeetingDetails";
import { ProblemNotice } from "../components/ProblemNotice";
import { RecordingsSection } from "../components/RecordingsSection";
import { ScreenHeading } from "../components/ScreenHeading";
import { useLoad } from "../load";
import { isOrganizer } from "../roles";
import { Link, paths } from "../router";
import { useServices } from "../services";
import { untilSettled } from "../settle";

// After "End the session for everyone": about 15 s in all, for the provider's webhook to end the session.
const ENDING_WAITS_MS = [500, 1000, 2000, 4000, 8000];

export function MeetingScreen({ id }: { id: string }) {
  const { api } = useServices();
  // Set by ending a session: the next load asks until the meeting is no longer live.
  const ending = useRef(false);
  const meeting = useLoad(() => {
    if (!ending.current) return api.getMeeting(id);
    ending.current = false;
    return untilSettled(() => api.getMeeting(id), (found) => found.status !== "live", ENDING_WAITS_MS);
  }, [api, id]);
  const [declined, setDeclined] = useState(false);

  if (declined) {
    return (
      <>
        <ScreenHeading title="Invitation declined" />
        <p role="status">You declined the invitation. The meeting is no longer in your list.</p>
        <p>
          <Link href={paths.meetings}>Back to my meetings</Link>
        </p>
      </>
    );
  }
  if (!meeting.data) {
    return (
      <>
        <ScreenHeading title="Meeting" />
        {meeting.loading && <p role="status">Loading the meeting…</p>}
        <ProblemNotice error={meeting.error} action="load" onRetry={meeting.reload} onReload={meeting.reload} />
        <p>
          <Link href={paths.meetings}>Back to my meetings</Link>
        </p>
      </>
    );
  }
  const current = meeting.data;
  return (
    <>
      <ScreenHeading title={current.title} />
      <MeetingDetails meeting={current} />
      <MeetingActions
        meeting={current}
        onChanged={meeting.reload}
        onEnded={() => {
          ending.current = true;
          meeting.reload();
        }}
        onDeclined={() => setDeclined(true)}
      />
      {isOrganizer(current.myRole) && (
        <>
          <InviteSection meeting={current} />
          <AttendanceSection meetingId={current.id} onRefresh={meeting.reload} />
          <RecordingsSection meetingId={current.id} />
        </>
      )}
    </>
  );
}
