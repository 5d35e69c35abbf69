// The runtime configuration, fetched from /config.json at start so one build serves every
// deployment (Entra ID in Azure, the local issuer under `make run`). Shape: web/README.md.

export type ProtocolMode = "AAD" | "OIDC";

export interface RuntimeConfig {
  authority: string;
  clientId: string;
  apiBaseUrl: string;
  scopes: string[];
  knownAuthorities: string[];
  protocolMode: ProtocolMode;
  localRoom: { baseUrl: string } | null;
  mailboxUrl: string | null;
}

export class ConfigError extends Error {}

// Entra ID's sign-in hosts (public and national clouds): MSAL's own protocol there, its generic
// OIDC mode for any other authority.
const MICROSOFT_HOSTS = [
  "login.microsoftonline.com",
  "login.microsoftonline.us",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
];

function isMicrosoftAuthority(authority: string): boolean {
  const host = new URL(authority).hostname;
  return MICROSOFT_HOSTS.includes(host) || host.endsWith(".ciamlogin.com");
}

function text(source: Record<string, unknown>, name: string): string {
  const value = source[name];
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(`"${name}" must be a non-empty string`);
  }
  return value;
}

function url(source: Record<string, unknown>, name: string): string {
  const value = text(source, name);
  try {
    new URL(value);
  } catch {
    throw new ConfigError(`"${name}" must be an absolute URL`);
  }
  return value.replace(/\/+$/, "");
}

function texts(source: Record<string, unknown>, name: string, required: boolean): string[] {
  const value = source[name] ?? (required ? undefined : []);
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string" && item !== "")) {
    throw new ConfigError(`"${name}" must be a list of strings`);
  }
  if (required && value.length === 0) throw new ConfigError(`"${name}" must name at least one scope`);
  return value;
}

/** Validate what /config.json holds; a ConfigError names the first bad field. */
export function parseConfig(raw: unknown): RuntimeConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError("the file must hold a JSON object");
  }
  const source = raw as Record<string, unknown>;
  const authority = url(source, "authority");
  const protocolMode = source.protocolMode ?? (isMicrosoftAuthority(authority) ? "AAD" : "OIDC");
  if (protocolMode !== "AAD" && protocolMode !== "OIDC") {
    throw new ConfigError('"protocolMode" must be "AAD" or "OIDC"');
  }
  const room = source.localRoom ?? null;
  if (room !== null && (typeof room !== "object" || Array.isArray(room))) {
    throw new ConfigError('"localRoom" must be null or {"baseUrl": "..."}');
  }
  const mailbox = source.mailboxUrl ?? null;
  return {
    authority,
    clientId: text(source, "clientId"),
    apiBaseUrl: url(source, "apiBaseUrl"),
    scopes: texts(source, "scopes", true),
    knownAuthorities: texts(source, "knownAuthorities", false),
    protocolMode,
    localRoom: room === null ? null : { baseUrl: url(room as Record<string, unknown>, "baseUrl") },
    mailboxUrl: mailbox === null ? null : url(source, "mailboxUrl"),
  };
}

export async function loadConfig(fetchImpl: typeof fetch = fetch): Promise<RuntimeConfig> {
  let response: Response;
  try {
    response = await fetchImpl("/config.json", { cache: "no-store" });
  } catch {
    throw new ConfigError("/config.json could not be fetched");
  }
  if (!response.ok) throw new ConfigError(`/config.json answered ${response.status}`);
  let raw: unknown;
  try {
    raw = await response.json();
  } catch {
    throw new ConfigError("/config.json is not JSON");
  }
  return parseConfig(raw);
}
