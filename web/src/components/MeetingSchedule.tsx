import type { Meeting } from "../api/types";
import { useServices } from "../services";
import { describeSchedule } from "../times";

/** When a meeting is, in its own zone and, when that reads differently, in the viewer's. */
export function MeetingSchedule({ meeting }: { meeting: Pick<Meeting, "startsAt" | "endsAt" | "timeZone"> }) {
  const { viewerZone } = useServices();
  const schedule = describeSchedule(meeting, viewerZone);
  if (!schedule) return <span>No fixed time: open to join until cancelled</span>;
  return (
    <span className="schedule">
      <span>{schedule.inMeetingZone}</span>
      {schedule.inViewerZone && <span className="secondary">{schedule.inViewerZone}</span>}
    </span>
  );
}
