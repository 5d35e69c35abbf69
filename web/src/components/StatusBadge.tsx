import type { Meeting } from "../api/types";

const LABELS: Record<Meeting["status"], string> = {
  scheduled: "Scheduled",
  live: "Live now",
  ended: "Ended",
  cancelled: "Cancelled",
};

export function StatusBadge({ status }: { status: Meeting["status"] }) {
  return <span className={`badge badge-${status}`}>{LABELS[status]}</span>;
}
