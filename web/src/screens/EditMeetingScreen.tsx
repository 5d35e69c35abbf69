import { useAction } from "../action";
import { MeetingForm } from "../components/MeetingForm";
import { ProblemNotice } from "../components/ProblemNotice";
import { ScreenHeading } from "../components/ScreenHeading";
import { useLoad } from "../load";
import { formFromMeeting, type FormValues, patchBody } from "../meetingForm";
import { Link, navigate, paths } from "../router";
import { useServices } from "../services";

export function EditMeetingScreen({ id }: { id: string }) {
  const { api } = useServices();
  const meeting = useLoad(() => api.getMeeting(id), [api, id]);
  const saving = useAction();

  if (!meeting.data) {
    return (
      <>
        <ScreenHeading title="Edit meeting" />
        {meeting.loading ? <p role="status">Loading the meeting…</p> : null}
        <ProblemNotice error={meeting.error} action="load" onRetry={meeting.reload} onReload={meeting.reload} />
      </>
    );
  }
  const current = meeting.data;
  const initial = formFromMeeting(current);

  const save = async (values: FormValues) => {
    const patch = patchBody(initial, values);
    if (Object.keys(patch).length === 0) return navigate(paths.meeting(id));
    // If-Match with the version we showed: an edit made elsewhere since then is a 412, never overwritten.
    const saved = await saving.run(() => api.updateMeeting(id, current.version, patch));
    if (saved) navigate(paths.meeting(id));
  };

  const reload = () => {
    saving.clear();
    meeting.reload();
  };

  return (
    <>
      <ScreenHeading title={`Edit ${current.title}`} />
      <MeetingForm
        // A reload after "changed elsewhere" starts the form again from the latest version.
        key={current.version}
        mode="edit"
        initial={initial}
        busy={saving.busy}
        error={saving.error}
        submitLabel="Save changes"
        onSubmit={save}
        onReload={reload}
        cancel={<Link href={paths.meeting(id)}>Back to the meeting</Link>}
      />
    </>
  );
}
