import { describe, expect, it, vi } from "vitest";
import { ApiError, MeetingsApi } from "./client";

function api(answer: () => Response | Promise<Response>) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchImpl = (async (url: URL, init: RequestInit) => {
    calls.push({ url: String(url), init });
    return answer();
  }) as unknown as typeof fetch;
  return { calls, client: new MeetingsApi("http://127.0.0.1:7071/api", async () => "token-1", fetchImpl) };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(error)}`);
  return error;
}

const json = (body: unknown, status = 200, type = "application/json") =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });

describe("MeetingsApi", () => {
  it("sends the bearer token, the idempotency key and JSON on create", async () => {
    const { calls, client } = api(() => json({ id: "m1", version: 1 }, 201));
    await expect(client.createMeeting({ title: "Sync" }, "key-1")).resolves.toMatchObject({ id: "m1" });
    expect(calls[0]?.url).toBe("http://127.0.0.1:7071/api/meetings");
    expect(calls[0]?.init).toMatchObject({
      method: "POST",
      body: '{"title":"Sync"}',
      headers: { Authorization: "Bearer token-1", "Idempotency-Key": "key-1", "Content-Type": "application/json" },
    });
  });

  it("guards edits and cancels with the version from the body", async () => {
    const { calls, client } = api(() => new Response(null, { status: 204 }));
    await client.cancelMeeting("a/b", 7);
    expect(calls[0]?.url).toBe("http://127.0.0.1:7071/api/meetings/a%2Fb");
    expect(calls[0]?.init.headers).toMatchObject({ "If-Match": '"7"' });
  });

  it("passes the list's scope and cursor", async () => {
    const { calls, client } = api(() => json({ items: [], nextCursor: null }));
    await client.listMeetings("invited", "c 1");
    expect(calls[0]?.url).toBe("http://127.0.0.1:7071/api/meetings?scope=invited&cursor=c+1");
  });

  it("throws the problem the API answered", async () => {
    const problem = { type: "urn:meetings:problem:rate-limited", title: "Too many", status: 429, retryAfterSeconds: 3 };
    const { client } = api(() => json(problem, 429, "application/problem+json"));
    const error = await failure(client.join("m1"));
    expect(error.slug).toBe("rate-limited");
    expect(error.problem.retryAfterSeconds).toBe(3);
  });

  it("makes a problem of an answer that is not one, and of no answer at all", async () => {
    const gateway = await failure(api(() => new Response("<html>Bad gateway</html>", { status: 502 })).client.me());
    expect([gateway.status, gateway.slug]).toEqual([502, "http-502"]);
    const offline = await failure(api(() => Promise.reject(new TypeError("Failed to fetch"))).client.me());
    expect([offline.status, offline.slug]).toEqual([0, "network"]);
  });

  it("tells of a closed account in the API's words, asking /me (which needs no role) after a 403 elsewhere", async () => {
    const closed = { type: "urn:meetings:problem:forbidden", title: "Not allowed", status: 403, detail: "This account was closed." };
    const paths: string[] = [];
    const told: string[] = [];
    const fetchImpl = (async (url: URL) => {
      paths.push(url.pathname);
      return json(closed, 403, "application/problem+json");
    }) as unknown as typeof fetch;
    const client = new MeetingsApi("http://127.0.0.1:7071/api", async () => "t", fetchImpl, (detail) => told.push(detail));
    await failure(client.listMeetings("all"));
    await vi.waitFor(() => expect(told).toEqual(["This account was closed."]));
    expect(paths).toEqual(["/api/meetings", "/api/me"]);
  });

  it("does not take a refused role for a closed account", async () => {
    const told: string[] = [];
    const fetchImpl = (async (url: URL) =>
      url.pathname === "/api/me"
        ? json({ id: "u1", tenantId: "t", name: "Bob", email: null })
        : json({ type: "urn:meetings:problem:forbidden", title: "No", status: 403, detail: "Only the owner." }, 403)) as unknown as typeof fetch;
    const client = new MeetingsApi("http://127.0.0.1:7071/api", async () => "t", fetchImpl, (detail) => told.push(detail));
    await failure(client.cancelMeeting("m1", 1));
    await expect(client.me()).resolves.toMatchObject({ id: "u1" });
    expect(told).toEqual([]);
  });
});
