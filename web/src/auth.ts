// Sign-in with MSAL.js: authorization code with PKCE, the same code path against Entra ID and the
// local issuer. For a non-Microsoft authority MSAL needs it in `knownAuthorities` (no instance
// discovery) and its generic OIDC protocol mode (no Entra-only parameters and responses).
import {
  type AccountInfo,
  type Configuration,
  EventType,
  InteractionRequiredAuthError,
  type IPublicClientApplication,
  PublicClientApplication,
} from "@azure/msal-browser";
import type { RuntimeConfig } from "./config";

export function msalConfiguration(config: RuntimeConfig, origin: string): Configuration {
  return {
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: config.knownAuthorities,
      redirectUri: `${origin}/`,
      postLogoutRedirectUri: `${origin}/`,
    },
    // Shared by the browser's tabs, so a meeting link opened in a new tab is already signed in (MSAL
    // encrypts it with a key that lives only as long as the browser session).
    cache: { cacheLocation: "localStorage" },
    system: { protocolMode: config.protocolMode },
  };
}

/**
 * The address without the `state` the sign-out return carries (the issuer's end-session redirect adds
 * it, MSAL leaves it): null when there is none. The app's routes use no query, and MSAL's sign-in
 * answers come in the fragment.
 */
export function withoutSignOutState(href: string): string | null {
  const url = new URL(href);
  if (!url.searchParams.has("state")) return null;
  url.searchParams.delete("state");
  return url.pathname + url.search + url.hash;
}

export async function startMsal(config: RuntimeConfig): Promise<PublicClientApplication> {
  // Cleaned before a sign-in can start here: MSAL would come back to the address it started from.
  const cleaned = withoutSignOutState(window.location.href);
  if (cleaned !== null) window.history.replaceState(window.history.state, "", cleaned);
  const msal = new PublicClientApplication(msalConfiguration(config, window.location.origin));
  await msal.initialize();
  msal.addEventCallback((event) => {
    const account = (event.payload as { account?: AccountInfo } | null)?.account;
    if ((event.eventType === EventType.LOGIN_SUCCESS || event.eventType === EventType.ACQUIRE_TOKEN_SUCCESS) && account) {
      msal.setActiveAccount(account);
    }
  });
  if (!msal.getActiveAccount()) {
    const [first] = msal.getAllAccounts();
    if (first) msal.setActiveAccount(first);
  }
  return msal;
}

/** An access token for the API; when only a new sign-in can give one, that sign-in starts. */
export async function accessToken(msal: IPublicClientApplication, scopes: string[]): Promise<string> {
  const account = msal.getActiveAccount() ?? msal.getAllAccounts()[0];
  if (!account) {
    await msal.loginRedirect({ scopes });
    throw new Error("signing in");
  }
  try {
    return (await msal.acquireTokenSilent({ scopes, account })).accessToken;
  } catch (error) {
    if (error instanceof InteractionRequiredAuthError) {
      await msal.acquireTokenRedirect({ scopes, account });
    }
    throw error;
  }
}
