import { InteractionStatus } from "@azure/msal-browser";
import { useIsAuthenticated, useMsal } from "@azure/msal-react";
import { useCallback, useMemo, useState } from "react";
import { MeetingsApi } from "./api/client";
import { accessToken } from "./auth";
import type { RuntimeConfig } from "./config";
import { Link, match, paths, type Route, usePath, useScrollReset } from "./router";
import { CallScreen } from "./screens/CallScreen";
import { EditMeetingScreen } from "./screens/EditMeetingScreen";
import { MeetingScreen } from "./screens/MeetingScreen";
import { MyMeetingsScreen } from "./screens/MyMeetingsScreen";
import { NewMeetingScreen } from "./screens/NewMeetingScreen";
import { AccountClosedScreen } from "./screens/AccountClosedScreen";
import { AccountScreen } from "./screens/AccountScreen";
import { SignInScreen } from "./screens/SignInScreen";
import { UnknownScreen } from "./screens/UnknownScreen";
import { type Services, ServicesContext } from "./services";
import { viewerTimeZone } from "./times";

// Survives the sign-out redirect, so the sign-in screen can say why the person is there.
const CLOSED_FLAG = "meetings:account-closed";

export function App({ config }: { config: RuntimeConfig }) {
  const { instance, inProgress } = useMsal();
  const signedIn = useIsAuthenticated();
  const [closedNotice] = useState(() => {
    const closed = sessionStorage.getItem(CLOSED_FLAG);
    sessionStorage.removeItem(CLOSED_FLAG);
    return closed ? "Your account is closed." : null;
  });
  const signIn = useCallback(() => void instance.loginRedirect({ scopes: config.scopes }), [instance, config]);

  if (!signedIn) {
    if (inProgress !== InteractionStatus.None) {
      return (
        <main id="main">
          <p role="status">Signing in…</p>
        </main>
      );
    }
    return <SignInScreen onSignIn={signIn} notice={closedNotice} />;
  }
  return <SignedIn config={config} signIn={signIn} />;
}

function SignedIn({ config, signIn }: { config: RuntimeConfig; signIn: () => void }) {
  const { instance, accounts } = useMsal();
  const path = usePath();
  useScrollReset(path);
  // The API refuses a closed account on every call: say so in its words instead of a role's refusal.
  const [accountRefused, setAccountRefused] = useState<string | null>(null);
  const services = useMemo<Services>(
    () => ({
      config,
      api: new MeetingsApi(
        config.apiBaseUrl,
        () => accessToken(instance, config.scopes),
        undefined,
        setAccountRefused,
      ),
      viewerZone: viewerTimeZone(),
      signInAgain: signIn,
    }),
    [config, instance, signIn],
  );
  const account = instance.getActiveAccount() ?? accounts[0];
  const signOut = () => void instance.logoutRedirect({ account });
  const closed = () => {
    sessionStorage.setItem(CLOSED_FLAG, "1");
    signOut();
  };
  const route = match(path);

  return (
    <ServicesContext.Provider value={services}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <nav aria-label="Main">
          <ul>
            <li>
              <Link href={paths.meetings} aria-current={route.screen === "meetings" ? "page" : undefined}>
                My meetings
              </Link>
            </li>
            <li>
              <Link href={paths.newMeeting} aria-current={route.screen === "new" ? "page" : undefined}>
                New meeting
              </Link>
            </li>
            <li>
              <Link href={paths.account} aria-current={route.screen === "account" ? "page" : undefined}>
                My account
              </Link>
            </li>
          </ul>
        </nav>
        <div className="who">
          <span>{account?.name ?? account?.username}</span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" key={accountRefused ?? path}>
        {accountRefused !== null ? (
          <AccountClosedScreen detail={accountRefused} />
        ) : (
          <Routed route={route} onClosed={closed} />
        )}
      </main>
      {config.mailboxUrl && (
        <footer className="app-footer">
          <p>
            Local stack: the invitations it sends are in the <a href={config.mailboxUrl}>local mailbox</a>.
          </p>
        </footer>
      )}
    </ServicesContext.Provider>
  );
}

function Routed({ route, onClosed }: { route: Route; onClosed: () => void }) {
  return (
    <>
      {route.screen === "meetings" && <MyMeetingsScreen />}
      {route.screen === "new" && <NewMeetingScreen />}
      {route.screen === "meeting" && <MeetingScreen id={route.id} />}
      {route.screen === "edit" && <EditMeetingScreen id={route.id} />}
      {route.screen === "call" && <CallScreen id={route.id} />}
      {route.screen === "account" && <AccountScreen onClosed={onClosed} />}
      {route.screen === "unknown" && <UnknownScreen />}
    </>
  );
}
