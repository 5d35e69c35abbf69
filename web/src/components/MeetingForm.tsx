import { type FormEvent, type ReactNode, useId, useState } from "react";
import { describeProblem, type Action } from "../problems";
import { checkForm, type FormValues } from "../meetingForm";
import { useServices } from "../services";
import { ProblemNotice } from "./ProblemNotice";
import { TimeZonePicker } from "./TimeZonePicker";

interface Props {
  mode: "create" | "edit";
  initial: FormValues;
  busy: boolean;
  error: unknown;
  submitLabel: string;
  onSubmit: (values: FormValues) => void;
  onReload?: () => void;
  cancel: ReactNode;
}

/** The meeting's title, schedule (wall times in a chosen zone), who may join and, on create, invitations. */
export function MeetingForm({ mode, initial, busy, error, submitLabel, onSubmit, onReload, cancel }: Props) {
  const { viewerZone } = useServices();
  const [values, setValues] = useState(initial);
  const [checked, setChecked] = useState<Record<string, string>>({});
  const base = useId();
  const action: Action = mode === "create" ? "create" : "edit";
  const serverFields = error ? (describeProblem(error, { action, now: Date.now(), viewerZone }).fields ?? {}) : {};
  const fieldError = (pointer: string): string | undefined =>
    checked[pointer] ??
    serverFields[pointer] ??
    Object.entries(serverFields).find(([field]) => field.startsWith(`${pointer}/`))?.[1];

  const set = <K extends keyof FormValues>(name: K, value: FormValues[K]) =>
    setValues((previous) => ({ ...previous, [name]: value }));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problems = checkForm(values);
    setChecked(problems);
    if (Object.keys(problems).length === 0) onSubmit(values);
  };

  const field = (pointer: string, label: string, control: (id: string, describedBy?: string) => ReactNode, hint?: string) => {
    const id = `${base}${pointer.replaceAll("/", "-")}`;
    const message = fieldError(pointer);
    const describedBy = [hint && `${id}-hint`, message && `${id}-error`].filter(Boolean).join(" ") || undefined;
    return (
      <div className={`field${message ? " field-invalid" : ""}`}>
        <label htmlFor={id}>{label}</label>
        {hint && (
          <p id={`${id}-hint`} className="hint">
            {hint}
          </p>
        )}
        {control(id, describedBy)}
        {message && (
          <p id={`${id}-error`} className="field-error">
            {message}
          </p>
        )}
      </div>
    );
  };

  return (
    <form onSubmit={submit} noValidate>
      {field("/title", "Title", (id, describedBy) => (
        <input
          id={id}
          value={values.title}
          maxLength={200}
          required
          aria-invalid={Boolean(fieldError("/title"))}
          aria-describedby={describedBy}
          onChange={(event) => set("title", event.target.value)}
        />
      ))}
      {field("/description", "Description (optional)", (id, describedBy) => (
        <textarea
          id={id}
          value={values.description}
          maxLength={2000}
          rows={3}
          aria-describedby={describedBy}
          onChange={(event) => set("description", event.target.value)}
        />
      ))}
      {field(
        "/timeZone",
        "Time zone",
        (id, describedBy) => (
          <TimeZonePicker id={id} value={values.timeZone} describedBy={describedBy} onChange={(zone) => set("timeZone", zone)} />
        ),
        "The start and end below are times in this zone.",
      )}
      <div className="field-row">
        {field(
          "/startsAt",
          "Starts (optional)",
          (id, describedBy) => (
            <input
              id={id}
              type="datetime-local"
              value={values.starts}
              aria-invalid={Boolean(fieldError("/startsAt"))}
              aria-describedby={describedBy}
              onChange={(event) => set("starts", event.target.value)}
            />
          ),
          "Without a start, people can join at any time until you cancel.",
        )}
        {field("/endsAt", "Ends (optional)", (id, describedBy) => (
          <input
            id={id}
            type="datetime-local"
            value={values.ends}
            aria-invalid={Boolean(fieldError("/endsAt"))}
            aria-describedby={describedBy}
            onChange={(event) => set("ends", event.target.value)}
          />
        ))}
      </div>
      <fieldset>
        <legend>Who may join</legend>
        <label>
          <input
            type="radio"
            name={`${base}-access`}
            checked={values.access === "invited"}
            onChange={() => set("access", "invited")}
          />
          Only the people I invite
        </label>
        <label>
          <input
            type="radio"
            name={`${base}-access`}
            checked={values.access === "organization"}
            onChange={() => set("access", "organization")}
          />
          Anyone in my organization with the link (a host lets them in)
        </label>
      </fieldset>
      {mode === "create" && (
        <>
          {field(
            "/invitees",
            "Invite people (optional)",
            (id, describedBy) => (
              <textarea
                id={id}
                value={values.invitees}
                rows={3}
                aria-invalid={Boolean(fieldError("/invitees"))}
                aria-describedby={describedBy}
                onChange={(event) => set("invitees", event.target.value)}
              />
            ),
            "Email addresses, one per line; they are invited as participants. You can add hosts on the meeting's page.",
          )}
          <div className="field">
            <label>
              <input
                type="checkbox"
                checked={values.recordOnStart}
                onChange={(event) => set("recordOnStart", event.target.checked)}
              />
              Record the meeting when it starts
            </label>
          </div>
        </>
      )}
      <ProblemNotice error={error} action={action} onRetry={() => onSubmit(values)} onReload={onReload} />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Saving…" : submitLabel}
        </button>
        {cancel}
      </div>
    </form>
  );
}
