import { useState } from "react";
import type { Meeting, MeetingScope } from "../api/types";
import { MeetingSchedule } from "../components/MeetingSchedule";
import { ProblemNotice } from "../components/ProblemNotice";
import { ScreenHeading } from "../components/ScreenHeading";
import { StatusBadge } from "../components/StatusBadge";
import { useLoad } from "../load";
import { roleSentence } from "../roles";
import { Link, paths } from "../router";
import { useServices } from "../services";

const SCOPES: { value: MeetingScope; label: string }[] = [
  { value: "all", label: "All" },
  { value: "owned", label: "I organize" },
  { value: "invited", label: "I am invited to" },
];

export function MyMeetingsScreen() {
  const { api } = useServices();
  const [scope, setScope] = useState<MeetingScope>("all");
  const [more, setMore] = useState<{ items: Meeting[]; nextCursor: string | null } | null>(null);
  const [moreError, setMoreError] = useState<unknown>(undefined);
  const first = useLoad(() => {
    // A fresh first page drops the pages loaded after the old one.
    setMore(null);
    return api.listMeetings(scope);
  }, [api, scope]);

  const items = [...(first.data?.items ?? []), ...(more?.items ?? [])];
  const cursor = more ? more.nextCursor : (first.data?.nextCursor ?? null);

  const showMore = async () => {
    if (!cursor) return;
    setMoreError(undefined);
    try {
      const page = await api.listMeetings(scope, cursor);
      setMore({ items: [...(more?.items ?? []), ...page.items], nextCursor: page.nextCursor });
    } catch (error) {
      setMoreError(error);
    }
  };

  return (
    <>
      <ScreenHeading title="My meetings" />
      <p>
        <Link className="button primary" href={paths.newMeeting}>
          New meeting
        </Link>
      </p>
      <fieldset className="segmented">
        <legend>Show</legend>
        {SCOPES.map((option) => (
          <label key={option.value}>
            <input
              type="radio"
              name="scope"
              value={option.value}
              checked={scope === option.value}
              onChange={() => setScope(option.value)}
            />
            {option.label}
          </label>
        ))}
      </fieldset>
      <ProblemNotice error={first.error} action="load" onRetry={first.reload} onReload={first.reload} />
      {first.loading && !first.data && <p role="status">Loading your meetings…</p>}
      {first.data && items.length === 0 && (
        <p>
          {scope === "invited" ? "Nobody has invited you to a meeting yet." : "You have no meetings yet."}{" "}
          <Link href={paths.newMeeting}>Create one</Link>.
        </p>
      )}
      {items.length > 0 && (
        <ul className="meeting-list" aria-label="Meetings">
          {items.map((meeting) => (
            <MeetingListItem key={meeting.id} meeting={meeting} />
          ))}
        </ul>
      )}
      <ProblemNotice error={moreError} action="load" onRetry={showMore} />
      {cursor && (
        <button type="button" onClick={showMore}>
          Show more meetings
        </button>
      )}
    </>
  );
}

function MeetingListItem({ meeting }: { meeting: Meeting }) {
  return (
    <li className={`meeting-card status-${meeting.status}`}>
      <h2>
        <Link href={paths.meeting(meeting.id)}>{meeting.title}</Link>
      </h2>
      <p>
        <StatusBadge status={meeting.status} /> <span className="secondary">{roleSentence(meeting)}</span>
      </p>
      <p>
        <MeetingSchedule meeting={meeting} />
      </p>
    </li>
  );
}
