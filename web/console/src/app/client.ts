// The one place the console builds its SDK client (from config.json's URLs and the signed-in token).

import { Xrunner, type Whoami } from "@xrunner/sdk";
import type { ConsoleConfig } from "./config";

export type Principal = Whoami;
export type ConsoleClient = Xrunner;

export function makeClient(config: ConsoleConfig, token: string): ConsoleClient {
  return new Xrunner({
    gatewayUrl: config.gateway,
    realtimeUrl: config.realtime,
    artifactsUrl: config.artifacts,
    token,
  });
}
