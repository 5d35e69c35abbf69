import { useCallback, useEffect, useRef, useState } from "react";
import type { MeetingsApi } from "./api/client";
import type { Join } from "./api/types";

/**
 * When to ask for a fresh token: a fifth of the time left before `expiresAt`, at most five minutes
 * early, so a slow answer still lands in time. Null for a token that does not expire.
 */
export function refreshDelay(expiresAt: string | null, now: number): number | null {
  if (!expiresAt) return null;
  const left = Date.parse(expiresAt) - now;
  return Math.max(0, left - Math.min(5 * 60_000, left / 5));
}

export interface FreshJoin {
  join: Join | undefined;
  error: unknown;
  /** The newest token: a refresh may revoke the one before it. */
  token: () => string;
  rejoin: () => Promise<Join | undefined>;
}

/** Join the meeting, and join again for a fresh provider token before the current one expires. */
export function useFreshJoin(api: MeetingsApi, meetingId: string): FreshJoin {
  const [join, setJoin] = useState<Join>();
  const [error, setError] = useState<unknown>();
  const latest = useRef<Join | undefined>(undefined);

  const rejoin = useCallback(async () => {
    try {
      const answer = await api.join(meetingId);
      latest.current = answer;
      setJoin(answer);
      setError(undefined);
      return answer;
    } catch (caught) {
      setError(caught);
      return undefined;
    }
  }, [api, meetingId]);

  useEffect(() => {
    void rejoin();
  }, [rejoin]);

  useEffect(() => {
    const delay = refreshDelay(join?.expiresAt ?? null, Date.now());
    if (delay === null) return;
    const timer = window.setTimeout(() => void rejoin(), delay);
    return () => window.clearTimeout(timer);
  }, [join, rejoin]);

  return { join, error, token: useCallback(() => latest.current?.authToken ?? "", []), rejoin };
}
