// Every problem the API can answer, as a sentence a person would want to read, and what they can
// do about it. Never the raw body.
import { ApiError, NETWORK } from "./api/client";
import { formatMoment } from "./times";

export type Action =
  | "load"
  | "create"
  | "edit"
  | "cancel"
  | "invite"
  | "revoke"
  | "decline"
  | "join"
  | "end"
  | "export"
  | "close-account";

/** What the person can do next: try the same again, reload what they see, or sign in again. */
export type Remedy = "retry" | "reload" | "sign-in" | null;

export interface Notice {
  message: string;
  remedy: Remedy;
  retryAfterSeconds?: number;
  /** Validation messages by JSON Pointer into the request body (`/title`, `/invitees/0/email`). */
  fields?: Record<string, string>;
}

export interface Situation {
  action: Action;
  now: number;
  viewerZone: string;
  locale?: string;
}

function wait(seconds: number | undefined): string {
  if (!seconds || seconds < 1) return "in a moment";
  if (seconds < 60) return `in ${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `in ${minutes} minute${minutes === 1 ? "" : "s"}`;
}

const OWNER_ONLY: Action[] = ["edit", "cancel", "revoke"];

function forbidden(action: Action): string {
  if (OWNER_ONLY.includes(action)) return "Only the meeting's owner can do that.";
  if (action === "invite") return "You cannot give that invitation: hosts may invite participants only.";
  if (action === "end" || action === "load") return "Only the meeting's owner and hosts can see or do that.";
  return "You are not allowed to do that.";
}

function conflict(action: Action): Notice {
  switch (action) {
    case "end":
      return { message: "Nothing is live in this meeting right now.", remedy: "reload" };
    case "create":
      return {
        message: "This meeting is already being created. Check your meetings before you try again.",
        remedy: null,
      };
    case "invite":
      return { message: "This meeting has reached its limit of invitations.", remedy: null };
    default:
      return { message: "That does not fit the meeting as it is now. Reload and try again.", remedy: "reload" };
  }
}

function joinWindow(error: ApiError, situation: Situation): string {
  const { joinOpensAt, joinClosesAt } = error.problem;
  const moment = (iso: string) => formatMoment(iso, situation.viewerZone, situation.now, situation.locale);
  if (joinOpensAt && Date.parse(joinOpensAt) > situation.now) {
    return `The meeting opens for joining at ${moment(joinOpensAt)} your time.`;
  }
  if (joinClosesAt && Date.parse(joinClosesAt) <= situation.now) {
    return `Joining this meeting closed at ${moment(joinClosesAt)} your time.`;
  }
  return "This meeting is not open for joining right now.";
}

export function describeProblem(error: unknown, situation: Situation): Notice {
  if (!(error instanceof ApiError)) {
    return { message: "Something went wrong in this page. Reload it and try again.", remedy: "reload" };
  }
  const retryAfterSeconds = error.problem.retryAfterSeconds;
  const later = { remedy: "retry" as const, retryAfterSeconds };
  switch (error.slug) {
    case NETWORK:
      return { message: "The meetings service cannot be reached. Check your connection and try again.", remedy: "retry" };
    case "unauthorized":
      return { message: "Your sign-in has expired. Sign in again to continue.", remedy: "sign-in" };
    case "insufficient-scope":
      return {
        message: "This app has not been allowed to use your meetings. Sign in again and accept its access.",
        remedy: "sign-in",
      };
    case "forbidden":
      return { message: forbidden(situation.action), remedy: null };
    case "not-found":
      return { message: "This meeting does not exist or you were removed from it.", remedy: null };
    case "cancelled":
      return { message: "This meeting was cancelled.", remedy: null };
    case "join-window":
      return { message: joinWindow(error, situation), remedy: "retry" };
    case "conflict":
      return conflict(situation.action);
    case "precondition-failed":
      return {
        message:
          situation.action === "edit"
            ? "This meeting was changed elsewhere. Reload to see the latest version, with your changes on top where nobody else changed the same thing."
            : "This meeting was changed elsewhere. Reload to see the latest version.",
        remedy: "reload",
      };
    case "validation":
      return {
        message: "Some of what you entered needs a change.",
        remedy: null,
        fields: Object.fromEntries((error.problem.errors ?? []).map((item) => [item.field, item.message])),
      };
    case "payload-too-large":
      return { message: "That is more text than a meeting can hold. Shorten it and try again.", remedy: null };
    case "rate-limited":
      return { message: `You did that many times in a short while. Try again ${wait(retryAfterSeconds)}.`, ...later };
    case "provider-rejected":
      return { message: `The video service turned this request down. Try again ${wait(retryAfterSeconds)}.`, ...later };
    case "provider-unavailable":
    case "provider-timeout":
      return { message: `The video service is not answering right now. Try again ${wait(retryAfterSeconds)}.`, ...later };
    case "unavailable":
      return { message: `The meetings service is briefly unavailable. Try again ${wait(retryAfterSeconds)}.`, ...later };
    case "misconfigured":
      return {
        message: "The meetings service is not fully set up yet. Try again later, or tell whoever runs it.",
        ...later,
      };
    default:
      return error.status >= 500
        ? { message: `Something went wrong on our side. Try again ${wait(retryAfterSeconds)}.`, ...later }
        : { message: "That did not work. Reload the page and try again.", remedy: "reload" };
  }
}
