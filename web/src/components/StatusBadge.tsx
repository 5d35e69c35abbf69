import type { Meeting } from "../api/types";

const LABELS: Record<Meeting["status"], string> = {
  scheduled: "Scheduled",
  live: "Live now",
  // Not the end of the meeting: joining again starts a new session.
  ended: "Last session ended",
  cancelled: "Cancelled",
};

export function StatusBadge({ status }: { status: Meeting["status"] }) {
  return <span className={`badge badge-${status}`}>{LABELS[status]}</span>;
}
