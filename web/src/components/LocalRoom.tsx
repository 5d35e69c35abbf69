import { useCallback, useEffect, useRef, useState } from "react";
import { isGuestPreset, type LocalRoomClient, RoomError, type RoomState } from "../room";

type Phase =
  | { kind: "entering" }
  | { kind: "in" }
  | { kind: "left" }
  | ({ kind: "out" } & Exit)
  | { kind: "failed"; message: string };

/** Why someone is no longer in the call, and whether joining again can help. */
export interface Exit {
  reason: string;
  canRejoin: boolean;
}

interface Props {
  client: LocalRoomClient;
  token: () => string;
  /** Why the caller is no longer in the call ("removed" by the room, or "ended" for everyone). */
  explainExit: (kind: "removed" | "ended") => Promise<Exit>;
  /** Join again through the API (a fresh token), before entering again. */
  rejoin: () => Promise<unknown>;
  /** Told each time the room shows the caller present (in the call, past any waiting room). */
  onPresent?: () => void;
}

const POLL_MS = 1000;

/** The stand-in's room: enter, watch who is there (and, for hosts, who waits), leave. */
export function LocalRoom({ client, token, explainExit, rejoin, onPresent }: Props) {
  const [room, setRoom] = useState<RoomState>();
  const [phase, setPhase] = useState<Phase>({ kind: "entering" });
  const [unreachable, setUnreachable] = useState(false);
  const inCall = phase.kind === "in";
  const present = useRef(false);
  const wasIn = useRef(false);
  useEffect(() => {
    wasIn.current = inCall;
  }, [inCall]);

  const fail = useCallback(
    async (error: unknown, used: string) => {
      if (!(error instanceof RoomError)) {
        return setPhase({ kind: "failed", message: "Something went wrong in the call." });
      }
      // A refresh revokes the token before it: a request still carrying that one proves nothing.
      if (error.status === 401 && used !== token()) return;
      if (error.status === 0) {
        // While in the call, keep polling; before it, there is nothing to poll.
        if (wasIn.current) return setUnreachable(true);
        return setPhase({ kind: "failed", message: "The call cannot be reached right now." });
      }
      present.current = false;
      if (error.status === 401) return setPhase({ kind: "out", ...(await explainExit("removed")) });
      if (error.status === 409) return setPhase({ kind: "out", ...(await explainExit("ended")) });
      setPhase({ kind: "failed", message: "The call did not accept this request." });
    },
    [explainExit, token],
  );

  const show = useCallback(
    async (state: RoomState) => {
      setUnreachable(false);
      setRoom(state);
      const mine = state.me.state;
      present.current = mine === "present" || mine === "waiting";
      if (mine === "present") onPresent?.();
      if (mine === "removed" || mine === "ended") setPhase({ kind: "out", ...(await explainExit(mine)) });
      else if (mine === "left") setPhase({ kind: "left" });
      else setPhase({ kind: "in" });
    },
    [explainExit, onPresent],
  );

  const enter = useCallback(async () => {
    setPhase({ kind: "entering" });
    const used = token();
    try {
      await show(await client.enter(used));
    } catch (error) {
      await fail(error, used);
    }
  }, [client, fail, show, token]);

  useEffect(() => {
    void enter();
  }, [enter]);

  useEffect(() => {
    if (!inCall) return;
    const timer = window.setInterval(async () => {
      const used = token();
      try {
        await show(await client.state(used));
      } catch (error) {
        await fail(error, used);
      }
    }, POLL_MS);
    return () => window.clearInterval(timer);
  }, [client, fail, inCall, show, token]);

  // Closing the tab or moving elsewhere in the app leaves the call, as a real call would.
  useEffect(() => {
    const goAway = () => {
      if (present.current) void client.leave(token(), true).catch(() => undefined);
      present.current = false;
    };
    window.addEventListener("pagehide", goAway);
    return () => {
      window.removeEventListener("pagehide", goAway);
      goAway();
    };
  }, [client, token]);

  const leave = async () => {
    const used = token();
    try {
      await show(await client.leave(used));
    } catch (error) {
      await fail(error, used);
    }
  };

  const admit = async (participantId: string) => {
    const used = token();
    try {
      await show(await client.admit(used, participantId));
    } catch (error) {
      await fail(error, used);
    }
  };

  const again = async () => {
    await rejoin();
    await enter();
  };

  if (phase.kind === "entering") return <p role="status">Connecting to the call…</p>;
  if (phase.kind === "failed") {
    return (
      <div role="alert">
        <p>{phase.message}</p>
        <button type="button" onClick={again}>
          Try again
        </button>
      </div>
    );
  }
  if (phase.kind === "out" || phase.kind === "left") {
    return (
      <div className="call-over">
        <p role="status">{phase.kind === "left" ? "You left the call." : phase.reason}</p>
        {(phase.kind === "left" || phase.canRejoin) && (
          <button type="button" onClick={again}>
            Join again
          </button>
        )}
      </div>
    );
  }
  if (!room) return null;
  if (room.me.state === "waiting") {
    return (
      <div className="call-waiting">
        <p role="status">You asked to join. Waiting for a host to let you in…</p>
        <button type="button" onClick={leave}>
          Stop waiting
        </button>
      </div>
    );
  }
  return (
    <div className="call">
      {unreachable && <p role="alert">The call cannot be reached right now; still trying…</p>}
      <section aria-labelledby="present-heading">
        <h2 id="present-heading">In the call ({room.present.length})</h2>
        <ul>
          {room.present.map((person) => (
            <li key={person.participantId}>
              {person.name}
              {isGuestPreset(person.preset) ? " (guest)" : ""}
              {person.participantId === room.me.participantId ? " (you)" : ""}
            </li>
          ))}
        </ul>
      </section>
      {room.canAdmit && (
        <section aria-labelledby="waiting-heading">
          <h2 id="waiting-heading" aria-live="polite">
            Asking to join ({room.waiting.length})
          </h2>
          {room.waiting.length === 0 ? (
            <p>Nobody is waiting.</p>
          ) : (
            <ul>
              {room.waiting.map((person) => (
                <li key={person.participantId}>
                  {person.name}{" "}
                  <button type="button" onClick={() => admit(person.participantId)}>
                    Let {person.name} in
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      <button type="button" className="danger" onClick={leave}>
        Leave the call
      </button>
    </div>
  );
}
