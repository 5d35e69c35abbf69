import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "./config";

const local = {
  authority: "https://localhost:7072/7d1b3c52-2a3f-4d7e-9c1a-5b6f0e4d2c11/v2.0",
  clientId: "0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f",
  apiBaseUrl: "http://127.0.0.1:7071/api/",
  scopes: ["api://3f6a1e2d-8b4c-4f5a-9e7d-1c2b3a4d5e6f/access_as_user"],
  knownAuthorities: ["localhost:7072"],
  localRoom: { baseUrl: "http://127.0.0.1:7073/__room" },
  mailboxUrl: "http://127.0.0.1:7074/",
};

describe("parseConfig", () => {
  it("reads the local stack's file, in MSAL's generic OIDC mode", () => {
    const config = parseConfig(local);
    expect(config.protocolMode).toBe("OIDC");
    expect(config.apiBaseUrl).toBe("http://127.0.0.1:7071/api");
    expect(config.localRoom).toEqual({ baseUrl: "http://127.0.0.1:7073/__room" });
    expect(config.mailboxUrl).toBe("http://127.0.0.1:7074");
  });

  it("uses MSAL's Entra ID mode for Entra ID, with no room and no mailbox", () => {
    const config = parseConfig({
      ...local,
      authority: "https://login.microsoftonline.com/7d1b3c52-2a3f-4d7e-9c1a-5b6f0e4d2c11",
      knownAuthorities: [],
      localRoom: null,
      mailboxUrl: null,
    });
    expect(config.protocolMode).toBe("AAD");
    expect(config.localRoom).toBeNull();
    expect(config.mailboxUrl).toBeNull();
  });

  it("lets the file choose the protocol mode", () => {
    expect(parseConfig({ ...local, protocolMode: "AAD" }).protocolMode).toBe("AAD");
    expect(() => parseConfig({ ...local, protocolMode: "SAML" })).toThrow(/protocolMode/);
  });

  it("names the field that is wrong", () => {
    expect(() => parseConfig({ ...local, clientId: "" })).toThrow(/"clientId"/);
    expect(() => parseConfig({ ...local, apiBaseUrl: "/api" })).toThrow(/"apiBaseUrl" must be an absolute URL/);
    expect(() => parseConfig({ ...local, scopes: [] })).toThrow(/"scopes"/);
    expect(() => parseConfig({ ...local, localRoom: { baseUrl: 7 } })).toThrow(/"baseUrl"/);
    expect(() => parseConfig([local])).toThrow(ConfigError);
  });

  it("treats a missing room and mailbox as none", () => {
    const { localRoom: _room, mailboxUrl: _mailbox, knownAuthorities: _known, ...rest } = local;
    const config = parseConfig(rest);
    expect(config.localRoom).toBeNull();
    expect(config.mailboxUrl).toBeNull();
    expect(config.knownAuthorities).toEqual([]);
  });
});

describe("loadConfig", () => {
  it("fetches /config.json without the cache", async () => {
    const seen: [string, RequestInit | undefined][] = [];
    const fake = (async (url: string, init?: RequestInit) => {
      seen.push([url, init]);
      return new Response(JSON.stringify(local));
    }) as unknown as typeof fetch;
    await expect(loadConfig(fake)).resolves.toMatchObject({ clientId: local.clientId });
    expect(seen).toEqual([["/config.json", { cache: "no-store" }]]);
  });

  it("says when the file is missing or not JSON", async () => {
    const missing = (async () => new Response("no", { status: 404 })) as unknown as typeof fetch;
    await expect(loadConfig(missing)).rejects.toThrow("/config.json answered 404");
    const garbled = (async () => new Response("<html>")) as unknown as typeof fetch;
    await expect(loadConfig(garbled)).rejects.toThrow("/config.json is not JSON");
  });
});
