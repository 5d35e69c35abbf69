import { lazy, Suspense, useCallback, useMemo, useState } from "react";
import { ApiError } from "../api/client";
import { type Exit, LocalRoom } from "../components/LocalRoom";
import { ProblemNotice } from "../components/ProblemNotice";
import { ScreenHeading } from "../components/ScreenHeading";
import { useFreshJoin } from "../freshJoin";
import { useLoad } from "../load";
import { LocalRoomClient } from "../room";
import { Link, paths } from "../router";
import { useServices } from "../services";

const ProviderCall = lazy(() => import("../components/ProviderCall"));

export function CallScreen({ id }: { id: string }) {
  const { api, config } = useServices();
  const meeting = useLoad(() => api.getMeeting(id), [api, id]);
  const { join, error, token, rejoin } = useFreshJoin(api, id);
  const room = useMemo(() => (config.localRoom ? new LocalRoomClient(config.localRoom.baseUrl) : null), [config]);

  // The room says only that we are out; the meeting says why.
  const explainExit = useCallback(
    async (kind: "removed" | "ended"): Promise<Exit> => {
      try {
        const current = await api.getMeeting(id);
        if (current.status === "cancelled") return { reason: "The meeting was cancelled.", canRejoin: false };
      } catch (caught) {
        if (caught instanceof ApiError && caught.status === 404) {
          return { reason: "You were removed from this meeting: your invitation was withdrawn.", canRejoin: false };
        }
      }
      const reason =
        kind === "ended"
          ? "The session was ended for everyone."
          : "You were removed from the call by a host, or your role in the meeting changed.";
      return { reason, canRejoin: true };
    },
    [api, id],
  );

  // A guest asks to join until a host lets them in; from then on (and after leaving) it is a call like any.
  const [admitted, setAdmitted] = useState(false);
  const admit = useCallback(() => setAdmitted(true), []);
  const title = meeting.data?.title ?? "Meeting";
  const asking = meeting.data?.myRole === "guest" && !admitted;
  return (
    <>
      <ScreenHeading title={`${asking ? "Asking to join" : "Call"}: ${title}`} />
      <p>
        <Link href={paths.meeting(id)}>Back to the meeting</Link>
      </p>
      {!join && !error && <p role="status">Joining…</p>}
      <ProblemNotice error={error} action="join" onRetry={() => void rejoin()} />
      {join && room && <LocalRoom client={room} token={token} explainExit={explainExit} rejoin={rejoin} onPresent={admit} />}
      {join && !room && (
        <Suspense fallback={<p role="status">Loading the call…</p>}>
          <ProviderCall join={join} />
        </Suspense>
      )}
    </>
  );
}
