import { useState } from "react";
import { useAction } from "../action";
import { MeetingForm } from "../components/MeetingForm";
import { ProblemNotice } from "../components/ProblemNotice";
import { ScreenHeading } from "../components/ScreenHeading";
import { useLoad } from "../load";
import { formFromMeeting, type FormValues, patchBody, rebase } from "../meetingForm";
import { Link, navigate, paths } from "../router";
import { useServices } from "../services";

const FIELD_LABELS: Record<keyof FormValues, string> = {
  title: "the title",
  description: "the description",
  access: "who may join",
  timeZone: "the schedule",
  starts: "the schedule",
  ends: "the schedule",
  recordOnStart: "recording",
  invitees: "invitations",
};

/** What the person had typed when a save failed, and the version they had started from. */
interface Unsaved {
  version: number;
  base: FormValues;
  mine: FormValues;
}

export function EditMeetingScreen({ id }: { id: string }) {
  const { api } = useServices();
  const meeting = useLoad(() => api.getMeeting(id), [api, id]);
  const saving = useAction();
  const [unsaved, setUnsaved] = useState<Unsaved | null>(null);

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
  // Reloaded after "changed elsewhere": the form starts from the latest version with the person's changes on top.
  const rebased = unsaved && unsaved.version !== current.version ? rebase(unsaved.base, unsaved.mine, initial) : null;
  const lost = [...new Set((rebased?.lost ?? []).map((name) => FIELD_LABELS[name]))];

  const save = async (values: FormValues) => {
    const patch = patchBody(initial, values);
    if (Object.keys(patch).length === 0) return navigate(paths.meeting(id));
    // If-Match with the version we showed: an edit made elsewhere since then is a 412, never overwritten.
    const saved = await saving.run(() => api.updateMeeting(id, current.version, patch));
    if (saved) navigate(paths.meeting(id));
    else setUnsaved({ version: current.version, base: initial, mine: values });
  };

  const reload = () => {
    saving.clear();
    meeting.reload();
  };

  return (
    <>
      <ScreenHeading title={`Edit ${current.title}`} />
      {rebased && (
        <p role="status" className="notice">
          This is the latest version, with your unsaved changes on top: save to keep them.
          {lost.length > 0 && ` Your change to ${lost.join(" and ")} was not kept: it was changed elsewhere too.`}
        </p>
      )}
      <MeetingForm
        // A reload after "changed elsewhere" starts the form again from the latest version.
        key={current.version}
        mode="edit"
        initial={rebased?.values ?? initial}
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
