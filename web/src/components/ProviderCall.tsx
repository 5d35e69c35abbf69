// The provider's own UI kit, loaded only when someone joins: each kit is megabytes, in its own chunk.
import { type ComponentType, useEffect, useState } from "react";
import type { Join } from "../api/types";

interface Kit {
  Meeting: ComponentType<{ meeting: never; showSetupScreen?: boolean }>;
  meeting: { leave: () => Promise<void> };
}

async function loadKit(join: Join): Promise<Kit> {
  const defaults = { audio: false, video: false };
  if (join.provider === "dyte") {
    const [{ default: DyteClient }, { DyteMeeting }] = await Promise.all([
      import("@dytesdk/web-core"),
      import("@dytesdk/react-ui-kit"),
    ]);
    const meeting = await DyteClient.init({ authToken: join.authToken, defaults });
    return { Meeting: DyteMeeting as unknown as Kit["Meeting"], meeting };
  }
  const [{ default: RealtimeKitClient }, { RtkMeeting }] = await Promise.all([
    import("@cloudflare/realtimekit"),
    import("@cloudflare/realtimekit-react-ui"),
  ]);
  const meeting = await RealtimeKitClient.init({ authToken: join.authToken, defaults });
  return { Meeting: RtkMeeting as unknown as Kit["Meeting"], meeting };
}

/**
 * Started with the token of the first join: the kit keeps its connection when a fresh token arrives
 * later, and joining again (a new call screen) starts it with the newest.
 */
export default function ProviderCall({ join }: { join: Join }) {
  const [first] = useState(join);
  const [kit, setKit] = useState<Kit>();
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let current: Kit | undefined;
    let gone = false;
    loadKit(first).then(
      (loaded) => {
        current = loaded;
        if (gone) void loaded.meeting.leave().catch(() => undefined);
        else setKit(loaded);
      },
      () => !gone && setFailed(true),
    );
    return () => {
      gone = true;
      void current?.meeting.leave().catch(() => undefined);
    };
  }, [first]);
  if (failed) return <p role="alert">The video service cannot be reached. Leave and try again in a moment.</p>;
  if (!kit) return <p role="status">Connecting to the call…</p>;
  return <kit.Meeting meeting={kit.meeting as never} showSetupScreen />;
}
