// The local room of the provider stand-in (ROOM.md): what the SPA mounts instead of a provider's UI
// kit under `make run`. Authenticated with the provider participant token of the join answer.

export type PresenceState = "present" | "waiting" | "left" | "removed" | "ended";

export interface RoomState {
  mode: "dyte" | "realtimekit";
  meetingId: string;
  sessionId: string | null;
  me: { participantId: string; name: string; preset: string; state: PresenceState };
  canAdmit: boolean;
  present: { participantId: string; name: string; preset: string }[];
  waiting: { participantId: string; name: string }[];
}

// The room names presets, not roles. Under the local stack they are the contract's default names
// (neither `make run` nor the tests set PRESET_GUEST): a guest preset under another name is not marked.
const GUEST_PRESETS = new Set(["group_call_guest", "group-call-guest"]);

/** Whether someone in the room is there as a guest (not invited; let in by a host). */
export function isGuestPreset(preset: string): boolean {
  return GUEST_PRESETS.has(preset);
}

/** A room request that failed: 401 once the token no longer works, 403, 409 for an inactive meeting, 0 for no answer. */
export class RoomError extends Error {
  constructor(readonly status: number) {
    super(`room answered ${status}`);
    this.name = "RoomError";
  }
}

/** `baseUrl` is the room's own (the stand-in's `/__room`), as config.json's `localRoom.baseUrl` gives it. */
export class LocalRoomClient {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
  ) {}

  private async call(method: string, route: string, token: string, body?: unknown, keepalive = false): Promise<RoomState> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}/${route}`, {
        method,
        keepalive,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new RoomError(0);
    }
    if (!response.ok) throw new RoomError(response.status);
    return (await response.json()) as RoomState;
  }

  enter(token: string): Promise<RoomState> {
    return this.call("POST", "enter", token);
  }

  state(token: string): Promise<RoomState> {
    return this.call("GET", "state", token);
  }

  /** Also sent as the page goes away (`keepalive`), so the others see the leave at once. */
  leave(token: string, keepalive = false): Promise<RoomState> {
    return this.call("POST", "leave", token, undefined, keepalive);
  }

  admit(token: string, participantId: string): Promise<RoomState> {
    return this.call("POST", "admit", token, { participantId });
  }
}
