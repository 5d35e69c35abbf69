import { useRef } from "react";
import { useAction } from "../action";
import { MeetingForm } from "../components/MeetingForm";
import { ScreenHeading } from "../components/ScreenHeading";
import { type Attempt, attemptFor, createBody, emptyForm, type FormValues } from "../meetingForm";
import { Link, navigate, paths } from "../router";
import { useServices } from "../services";

export function NewMeetingScreen() {
  const { api, viewerZone } = useServices();
  const creating = useAction();
  const attempt = useRef<Attempt | null>(null);

  const create = async (values: FormValues) => {
    const body = createBody(values);
    const { key } = (attempt.current = attemptFor(body, attempt.current, () => crypto.randomUUID()));
    const meeting = await creating.run(() => api.createMeeting(body, key));
    if (meeting) navigate(paths.meeting(meeting.id));
  };

  return (
    <>
      <ScreenHeading title="New meeting" />
      <MeetingForm
        mode="create"
        initial={emptyForm(viewerZone)}
        busy={creating.busy}
        error={creating.error}
        submitLabel="Create meeting"
        onSubmit={create}
        cancel={<Link href={paths.meetings}>Back to my meetings</Link>}
      />
    </>
  );
}
