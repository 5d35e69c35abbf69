import type { Session } from "../api/types";
import { useLoad } from "../load";
import { useServices } from "../services";
import { formatDuration, formatInstant } from "../times";
import { ProblemNotice } from "./ProblemNotice";

const END_REASONS: Record<string, string> = {
  HOST_ENDED_MEETING: "ended by a host",
  ALL_PARTICIPANTS_LEFT: "everyone left",
};

/** Who was in each session, when and for how long (from the provider's reports, so a few seconds late). */
export function AttendanceSection({ meetingId, onRefresh }: { meetingId: string; onRefresh: () => void }) {
  const { api } = useServices();
  const sessions = useLoad(() => api.listSessions(meetingId), [api, meetingId]);
  // Sessions start and end the meeting's live status too: refresh both, so its badge and actions follow.
  const refresh = () => {
    sessions.reload();
    onRefresh();
  };
  return (
    <section aria-labelledby="attendance-heading">
      <h2 id="attendance-heading">Attendance</h2>
      <button type="button" onClick={refresh} disabled={sessions.loading}>
        Refresh attendance
      </button>
      <ProblemNotice error={sessions.error} action="load" onRetry={sessions.reload} />
      {sessions.data && sessions.data.items.length === 0 && <p>Nobody has joined yet.</p>}
      {sessions.data?.items.map((session) => <SessionAttendance key={session.id} session={session} />)}
    </section>
  );
}

function SessionAttendance({ session }: { session: Session }) {
  const { viewerZone } = useServices();
  const when = (iso: string | null) => (iso ? formatInstant(iso, viewerZone) : "not known yet");
  const reason = session.endReason ? (END_REASONS[session.endReason] ?? session.endReason.toLowerCase().replaceAll("_", " ")) : null;
  return (
    <article className="session">
      <h3>Session started {when(session.startedAt)}</h3>
      <p>{session.endedAt ? `Ended ${when(session.endedAt)}${reason ? ` (${reason})` : ""}` : "In progress"}</p>
      <table>
        <caption className="visually-hidden">Who attended the session started {when(session.startedAt)}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Joined</th>
            <th scope="col">Left</th>
            <th scope="col">Time in the call</th>
          </tr>
        </thead>
        <tbody>
          {session.participants.map((person, index) => (
            <tr key={`${person.userId ?? person.name}-${person.joinedAt ?? index}`}>
              <th scope="row">
                {person.name}
                {person.role === "guest" ? " (guest)" : ""}
              </th>
              <td>{when(person.joinedAt)}</td>
              <td>{person.leftAt ? when(person.leftAt) : "Still there"}</td>
              <td>{person.durationSeconds === null ? "—" : formatDuration(person.durationSeconds)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}
