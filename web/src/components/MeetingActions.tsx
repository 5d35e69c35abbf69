import { useState } from "react";
import { useAction } from "../action";
import type { Meeting } from "../api/types";
import { isOrganizer } from "../roles";
import { Link, paths } from "../router";
import { useServices } from "../services";
import { ConfirmDialog } from "./ConfirmDialog";
import { ProblemNotice } from "./ProblemNotice";

type Asking = "cancel" | "end" | "decline" | null;

interface Props {
  meeting: Meeting;
  onChanged: () => void;
  /** The session was ended: the meeting turns from live a moment later. */
  onEnded: () => void;
  onDeclined: () => void;
}

/** Join (or ask to join), and what the caller's role lets them do to the whole meeting. */
export function MeetingActions({ meeting, onChanged, onEnded, onDeclined }: Props) {
  const { api } = useServices();
  const [asking, setAsking] = useState<Asking>(null);
  const [done, setDone] = useState<string | null>(null);
  const [last, setLast] = useState<Exclude<Asking, null>>("cancel");
  const acting = useAction();
  const role = meeting.myRole;
  const open = meeting.status !== "cancelled";
  // Whoever sees a cancelled meeting (owner, host, anyone) is told why there is nothing to do in it.
  const notice = done ?? (open ? null : "The meeting is cancelled.");

  const act = async (action: Exclude<Asking, null>) => {
    const work = {
      cancel: () => api.cancelMeeting(meeting.id, meeting.version),
      end: () => api.endSession(meeting.id),
      decline: () => api.declineInvite(meeting.id),
    }[action];
    setLast(action);
    setDone(null);
    const succeeded = await acting.run(async () => {
      await work();
      return true;
    });
    setAsking(null);
    if (!succeeded) return;
    if (action === "decline") return onDeclined();
    setDone(action === "end" ? "The session is ending for everyone." : "The meeting is cancelled.");
    if (action === "end") onEnded();
    else onChanged();
  };

  return (
    <section aria-label="Actions" className="meeting-actions">
      <div className="actions">
        {open && (
          <Link className="button primary" href={paths.call(meeting.id)}>
            {role === "guest" ? "Ask to join" : "Join"}
          </Link>
        )}
        {role === "owner" && open && (
          <Link className="button" href={paths.edit(meeting.id)}>
            Edit
          </Link>
        )}
        {isOrganizer(role) && meeting.status === "live" && (
          <button type="button" onClick={() => setAsking("end")}>
            End the session for everyone
          </button>
        )}
        {role === "owner" && open && (
          <button type="button" className="danger" onClick={() => setAsking("cancel")}>
            Cancel meeting
          </button>
        )}
        {(role === "host" || role === "participant") && open && (
          <button type="button" onClick={() => setAsking("decline")}>
            Decline invitation
          </button>
        )}
      </div>
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <ProblemNotice
        error={acting.error}
        action={last}
        onReload={() => {
          acting.clear();
          onChanged();
        }}
        onRetry={acting.clear}
      />
      <ConfirmDialog
        open={asking === "cancel"}
        title="Cancel this meeting?"
        confirmLabel="Cancel the meeting"
        cancelLabel="Keep it"
        busy={acting.busy}
        onConfirm={() => act("cancel")}
        onCancel={() => setAsking(null)}
      >
        <p>Nobody can join it any more, and anyone in a call now is removed. This cannot be undone.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={asking === "end"}
        title="End the session for everyone?"
        confirmLabel="End it for everyone"
        cancelLabel="Keep it going"
        busy={acting.busy}
        onConfirm={() => act("end")}
        onCancel={() => setAsking(null)}
      >
        <p>Everyone in the call is removed. People can join again later, which starts a new session.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={asking === "decline"}
        title="Decline this invitation?"
        confirmLabel="Decline"
        cancelLabel="Keep the invitation"
        busy={acting.busy}
        onConfirm={() => act("decline")}
        onCancel={() => setAsking(null)}
      >
        <p>The meeting leaves your list, and the organizer sees that you declined.</p>
      </ConfirmDialog>
    </section>
  );
}
