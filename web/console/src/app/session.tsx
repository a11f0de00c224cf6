// The signed-in session every page reads: the runtime config, the SDK client and the principal (useConsole()).

import { createContext, useContext, type ReactNode } from "react";
import type { ConsoleClient, Principal } from "./client";
import type { ConsoleConfig } from "./config";
import type { LiveEvents } from "./live";

export interface ConsoleSession {
  config: ConsoleConfig;
  client: ConsoleClient;
  principal: Principal;
  /** The tab's one stream of the tenant's job events; `live.subscribe(fn)` in an effect, return its result. */
  live: LiveEvents;
  /** Whether the principal holds `scope` (an `admin` scope implies every other). */
  can(scope: string): boolean;
  signOut(): void;
}

const Context = createContext<ConsoleSession | null>(null);

export function SessionProvider({ value, children }: { value: ConsoleSession; children: ReactNode }) {
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

/** The session; only pages under the signed-in shell call it (the shell redirects to /signin otherwise). */
export function useConsole(): ConsoleSession {
  const session = useContext(Context);
  if (!session) throw new Error("useConsole() outside a signed-in page");
  return session;
}
