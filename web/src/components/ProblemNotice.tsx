import type { Action } from "../problems";
import { describeProblem } from "../problems";
import { useServices } from "../services";

interface Props {
  error: unknown;
  action: Action;
  onRetry?: () => void;
  onReload?: () => void;
}

/** What went wrong, in words, with the one thing to do about it. */
export function ProblemNotice({ error, action, onRetry, onReload }: Props) {
  const { viewerZone, signInAgain } = useServices();
  if (error === undefined) return null;
  const notice = describeProblem(error, { action, now: Date.now(), viewerZone });
  const fields = Object.entries(notice.fields ?? {});
  return (
    <div role="alert" className="notice notice-problem">
      <p>{notice.message}</p>
      {fields.length > 0 && (
        <ul>
          {fields.map(([field, message]) => (
            <li key={field}>
              {fieldName(field)}: {message}
            </li>
          ))}
        </ul>
      )}
      {notice.remedy === "retry" && onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
      {notice.remedy === "reload" && onReload && (
        <button type="button" onClick={onReload}>
          Reload
        </button>
      )}
      {notice.remedy === "sign-in" && (
        <button type="button" onClick={signInAgain}>
          Sign in again
        </button>
      )}
    </div>
  );
}

const FIELD_NAMES: Record<string, string> = {
  title: "Title",
  description: "Description",
  startsAt: "Starts",
  endsAt: "Ends",
  timeZone: "Time zone",
  access: "Who may join",
  invitees: "Invitations",
  settings: "Recording",
};

function fieldName(pointer: string): string {
  const [first = "", index, leaf] = pointer.split("/").slice(1);
  const name = FIELD_NAMES[first] ?? "Request";
  return index !== undefined && leaf ? `${name} ${Number(index) + 1} (${leaf})` : name;
}
