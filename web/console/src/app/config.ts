// The console's runtime configuration: read from config.json beside index.html, so one build serves any deployment.

export interface OidcConfig {
  /** The provider's issuer URL; its /.well-known/openid-configuration names the endpoints. */
  issuer: string;
  client_id: string;
  /** Space-separated scopes to request (default "openid"). */
  scope?: string;
  /** Sent as `audience` (some providers need it to mint an access token for the gateway). */
  audience?: string;
}

export interface ConsoleConfig {
  /** Base URLs of the gateway (REST), realtime (SSE, WebSocket) and artifacts services; empty: this page's origin. */
  gateway: string;
  realtime: string;
  artifacts: string;
  auth: {
    /** Whether the paste-a-token form (and the `#token=` sign-in link) is offered. */
    token: boolean;
    oidc: OidcConfig | null;
  };
}

/** The config.json next to the console's index.html (resolved against the build's base path). */
export async function loadConfig(): Promise<ConsoleConfig> {
  const url = new URL("config.json", new URL(import.meta.env.BASE_URL, location.href));
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const raw = (await res.json()) as Partial<ConsoleConfig>;
  const origin = location.origin;
  return {
    gateway: raw.gateway || origin,
    realtime: raw.realtime || raw.gateway || origin,
    artifacts: raw.artifacts || raw.gateway || origin,
    auth: { token: raw.auth?.token ?? true, oidc: raw.auth?.oidc ?? null },
  };
}
