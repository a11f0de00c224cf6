// The one place the console builds its SDK client (from config.json's URLs and the signed-in token).
// TEMPORARY until @xrunner/sdk lands: a minimal whoami call with the same shape; swapped for the SDK's client.

import type { ConsoleConfig } from "./config";

export interface Principal {
  subject: string;
  tenant: string;
  scopes: string[];
}

export interface ConsoleClient {
  whoami(): Promise<Principal>;
}

export function makeClient(config: ConsoleConfig, token: string): ConsoleClient {
  return {
    async whoami() {
      const res = await fetch(new URL("/v1/whoami", config.gateway), { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`whoami: HTTP ${res.status}`);
      return (await res.json()) as Principal;
    },
  };
}
