import { MsalProvider } from "@azure/msal-react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { startMsal } from "./auth";
import { ConfigError, loadConfig } from "./config";
import "./styles.css";

const root = createRoot(document.getElementById("root") as HTMLElement);

async function start(): Promise<void> {
  try {
    const config = await loadConfig();
    const msal = await startMsal(config);
    root.render(
      <StrictMode>
        <MsalProvider instance={msal}>
          <App config={config} />
        </MsalProvider>
      </StrictMode>,
    );
  } catch (error) {
    const reason = error instanceof ConfigError ? `The app's configuration is not usable: ${error.message}.` : null;
    root.render(
      <main id="main">
        <h1>Meetings cannot start</h1>
        <p role="alert">{reason ?? "Sign-in could not be set up. Reload the page to try again."}</p>
      </main>,
    );
  }
}

void start();
