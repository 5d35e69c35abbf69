import { useRef } from "react";
import { useAction } from "../action";
import { MeetingForm } from "../components/MeetingForm";
import { ScreenHeading } from "../components/ScreenHeading";
import { createBody, emptyForm, type FormValues } from "../meetingForm";
import { Link, navigate, paths } from "../router";
import { useServices } from "../services";

export function NewMeetingScreen() {
  const { api, viewerZone } = useServices();
  const creating = useAction();
  // One key per distinct body: resending the same meeting (a retry after a lost answer) replays the
  // first answer instead of creating a second meeting; a changed body is a new request.
  const attempt = useRef<{ body: string; key: string } | null>(null);

  const create = async (values: FormValues) => {
    const body = createBody(values);
    const text = JSON.stringify(body);
    if (attempt.current?.body !== text) attempt.current = { body: text, key: crypto.randomUUID() };
    const { key } = attempt.current;
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
