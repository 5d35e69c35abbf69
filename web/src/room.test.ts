import { describe, expect, it } from "vitest";
import { isGuestPreset, LocalRoomClient, RoomError } from "./room";

const state = { me: { state: "present" } };

function recorder(status = 200) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchImpl = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(JSON.stringify(status === 200 ? state : { error: "no" }), { status });
  }) as unknown as typeof fetch;
  return { calls, fetchImpl };
}

describe("LocalRoomClient", () => {
  it("calls the room's routes under its base with the participant token", async () => {
    const { calls, fetchImpl } = recorder();
    const room = new LocalRoomClient("http://127.0.0.1:7073/__room", fetchImpl);
    await room.enter("t1");
    await room.admit("t1", "p2");
    await room.leave("t1", true);
    expect(calls.map((call) => [call.init.method, call.url])).toEqual([
      ["POST", "http://127.0.0.1:7073/__room/enter"],
      ["POST", "http://127.0.0.1:7073/__room/admit"],
      ["POST", "http://127.0.0.1:7073/__room/leave"],
    ]);
    expect(calls[0]?.init.headers).toEqual({ Authorization: "Bearer t1" });
    expect(calls[1]?.init.body).toBe('{"participantId":"p2"}');
    expect(calls[2]?.init.keepalive).toBe(true);
  });

  it("turns a refusal into a RoomError with its status", async () => {
    const room = new LocalRoomClient("http://room", recorder(401).fetchImpl);
    await expect(room.state("old")).rejects.toEqual(new RoomError(401));
  });

  it("turns no answer into status 0", async () => {
    const unreachable = (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch;
    await expect(new LocalRoomClient("http://room", unreachable).state("t")).rejects.toMatchObject({ status: 0 });
  });
});

describe("isGuestPreset", () => {
  it("knows the guest preset by its default name in either mode, and nobody else's", () => {
    expect(isGuestPreset("group_call_guest")).toBe(true);
    expect(isGuestPreset("group-call-guest")).toBe(true);
    expect(isGuestPreset("group_call_host")).toBe(false);
    expect(isGuestPreset("group-call-participant")).toBe(false);
  });
});
