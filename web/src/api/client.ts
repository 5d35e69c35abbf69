// The meetings API over fetch. The browser cannot read ETag, Location or Retry-After through CORS,
// so everything used here comes from the body (`id`, `version`, `retryAfterSeconds`).
import type {
  Export,
  Invite,
  Invitee,
  Join,
  Me,
  Meeting,
  MeetingCreate,
  MeetingPatch,
  MeetingScope,
  Page,
  Problem,
  Recording,
  Session,
} from "./types";

/** A request that did not succeed: the problem the API answered, or one made up for a network failure. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = "ApiError";
    this.status = problem.status;
    this.problem = problem;
  }

  get slug(): string {
    return this.problem.type.replace(/^urn:meetings:problem:/, "");
  }
}

/** The slug used when the request never got an answer. */
export const NETWORK = "network";

function isProblem(body: unknown): body is Problem {
  const value = body as Partial<Problem> | null;
  return (
    typeof value === "object" &&
    value !== null &&
    typeof value.type === "string" &&
    typeof value.status === "number" &&
    typeof value.title === "string"
  );
}

async function problemOf(response: Response): Promise<Problem> {
  try {
    const body: unknown = await response.json();
    if (isProblem(body)) return body;
  } catch {
    // Not JSON: a proxy or gateway answered; fall through to a problem made from the status.
  }
  return { type: `urn:meetings:problem:http-${response.status}`, title: response.statusText, status: response.status };
}

export type TokenSource = () => Promise<string>;

/** Told the API's own words when it refuses the caller's account itself (closed), not their role. */
export type AccountRefused = (detail: string) => void;

// Routes about the caller's own account need no role: a 403 `forbidden` there can only refuse the account.
const ACCOUNT_ROUTE = /^\/me(\/|$)/;

interface Options {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string | undefined>;
}

export class MeetingsApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: TokenSource,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
    private readonly onAccountRefused?: AccountRefused,
  ) {}

  private askingAboutAccount = false;

  /**
   * A 403 `forbidden` elsewhere may be the caller's role or their account: one GET /me (which needs no
   * role) tells which, and answers through `onAccountRefused` when it is the account.
   */
  private forbidden(path: string, error: ApiError): void {
    if (!this.onAccountRefused || error.status !== 403 || error.slug !== "forbidden") return;
    if (ACCOUNT_ROUTE.test(path)) return this.onAccountRefused(error.problem.detail ?? "This account was closed.");
    if (this.askingAboutAccount) return;
    this.askingAboutAccount = true;
    void this.me()
      .catch(() => undefined)
      .finally(() => {
        this.askingAboutAccount = false;
      });
  }

  private async send(path: string, options: Options = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    const headers: Record<string, string> = {
      Authorization: `Bearer ${await this.token()}`,
      ...options.headers,
    };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method: options.method ?? "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
    } catch {
      throw new ApiError({ type: `urn:meetings:problem:${NETWORK}`, title: "No answer", status: 0 });
    }
    if (!response.ok) {
      const error = new ApiError(await problemOf(response));
      this.forbidden(path, error);
      throw error;
    }
    return response;
  }

  private async json<T>(path: string, options?: Options): Promise<T> {
    return (await (await this.send(path, options)).json()) as T;
  }

  private meeting(id: string): string {
    return `/meetings/${encodeURIComponent(id)}`;
  }

  me(): Promise<Me> {
    return this.json("/me");
  }

  exportAccount(): Promise<Export> {
    return this.json("/me/export");
  }

  async closeAccount(): Promise<void> {
    await this.send("/me", { method: "DELETE" });
  }

  listMeetings(scope: MeetingScope, cursor?: string): Promise<Page<Meeting>> {
    return this.json("/meetings", { query: { scope, cursor } });
  }

  getMeeting(id: string): Promise<Meeting> {
    return this.json(this.meeting(id));
  }

  /** `idempotencyKey` makes a retry of the same create replay the first answer instead of creating twice. */
  createMeeting(body: MeetingCreate, idempotencyKey: string): Promise<Meeting> {
    return this.json("/meetings", { method: "POST", body, headers: { "Idempotency-Key": idempotencyKey } });
  }

  updateMeeting(id: string, version: number, patch: MeetingPatch): Promise<Meeting> {
    return this.json(this.meeting(id), { method: "PATCH", body: patch, headers: { "If-Match": `"${version}"` } });
  }

  async cancelMeeting(id: string, version: number): Promise<void> {
    await this.send(this.meeting(id), { method: "DELETE", headers: { "If-Match": `"${version}"` } });
  }

  /** Also changes a role: inviting an address again updates its invite. */
  invite(id: string, invitees: Invitee[]): Promise<{ items: Invite[] }> {
    return this.json(`${this.meeting(id)}/invites`, { method: "POST", body: { invitees } });
  }

  listInvites(id: string, cursor?: string): Promise<Page<Invite>> {
    return this.json(`${this.meeting(id)}/invites`, { query: { cursor } });
  }

  async revokeInvite(id: string, inviteId: string): Promise<void> {
    await this.send(`${this.meeting(id)}/invites/${encodeURIComponent(inviteId)}`, { method: "DELETE" });
  }

  async declineInvite(id: string): Promise<void> {
    await this.send(`${this.meeting(id)}/invites/mine/decline`, { method: "POST" });
  }

  join(id: string): Promise<Join> {
    return this.json(`${this.meeting(id)}/join`, { method: "POST" });
  }

  async endSession(id: string): Promise<void> {
    await this.send(`${this.meeting(id)}/end`, { method: "POST" });
  }

  listSessions(id: string, cursor?: string): Promise<Page<Session>> {
    return this.json(`${this.meeting(id)}/sessions`, { query: { cursor } });
  }

  listRecordings(id: string, cursor?: string): Promise<Page<Recording>> {
    return this.json(`${this.meeting(id)}/recordings`, { query: { cursor } });
  }
}
