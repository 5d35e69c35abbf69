import type { Recording } from "../api/types";
import { useLoad } from "../load";
import { useServices } from "../services";
import { formatDuration, formatInstant } from "../times";
import { ProblemNotice } from "./ProblemNotice";

const STATUS: Record<Recording["status"], string> = {
  INVOKED: "Starting",
  RECORDING: "Recording",
  PAUSED: "Paused",
  UPLOADING: "Being saved",
  UPLOADED: "Ready",
  ERRORED: "Failed",
};

function formatSize(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/** Recordings with their download links; a link works until it expires, then a refresh brings a new one. */
export function RecordingsSection({ meetingId }: { meetingId: string }) {
  const { api } = useServices();
  const recordings = useLoad(() => api.listRecordings(meetingId), [api, meetingId]);
  return (
    <section aria-labelledby="recordings-heading">
      <h2 id="recordings-heading">Recordings</h2>
      <button type="button" onClick={recordings.reload} disabled={recordings.loading}>
        Refresh recordings
      </button>
      <ProblemNotice error={recordings.error} action="load" onRetry={recordings.reload} />
      {recordings.data && recordings.data.items.length === 0 && <p>No recordings.</p>}
      {recordings.data && recordings.data.items.length > 0 && (
        <ul className="recordings">
          {recordings.data.items.map((recording) => (
            <RecordingItem key={recording.id} recording={recording} />
          ))}
        </ul>
      )}
    </section>
  );
}

function RecordingItem({ recording }: { recording: Recording }) {
  const { viewerZone } = useServices();
  const facts = [
    STATUS[recording.status],
    recording.durationSeconds !== null ? formatDuration(recording.durationSeconds) : null,
    recording.sizeBytes !== null ? formatSize(recording.sizeBytes) : null,
    recording.stored ? "kept by us" : recording.status === "UPLOADED" ? "kept by the video provider" : null,
  ].filter(Boolean);
  const expiry = recording.downloadUrlExpiresAt;
  const expired = expiry !== null && Date.parse(expiry) <= Date.now();
  const started = recording.startedAt ? formatInstant(recording.startedAt, viewerZone) : "a session";
  return (
    <li>
      <p>
        Recording of {started}: {facts.join(", ")}
      </p>
      {recording.downloadUrl && !expired && (
        <p>
          <a href={recording.downloadUrl} download rel="noopener">
            Download the recording of {started}
          </a>
          {expiry && <span className="secondary"> (link works until {formatInstant(expiry, viewerZone)})</span>}
        </p>
      )}
      {recording.downloadUrl && expired && (
        <p className="secondary">The download link has expired: refresh the recordings for a new one.</p>
      )}
    </li>
  );
}
