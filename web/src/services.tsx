import { createContext, useContext } from "react";
import type { MeetingsApi } from "./api/client";
import type { RuntimeConfig } from "./config";

export interface Services {
  config: RuntimeConfig;
  api: MeetingsApi;
  viewerZone: string;
  signInAgain: () => void;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error("useServices outside ServicesContext");
  return services;
}
