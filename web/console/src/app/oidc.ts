// OIDC sign-in, authorization code + PKCE (RFC 7636), for a public client: no secret in the browser. The provider's
// endpoints come from its discovery document; the code comes back to /signin and is traded for tokens there.
// The gateway must accept the token the provider issues (XR_JWKS_URL, XR_JWT_ISSUER, XR_JWT_AUDIENCE and a
// `tenant` claim); the console sends the access token when there is one, else the ID token.

import type { OidcConfig } from "./config";

const PENDING = "xrunner.oidc";

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

async function discover(issuer: string): Promise<Discovery> {
  const res = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`OIDC discovery: HTTP ${res.status}`);
  return (await res.json()) as Discovery;
}

function randomString(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(data: Uint8Array): string {
  return btoa(String.fromCharCode(...data)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function redirectUri(): string {
  return new URL("signin", new URL(import.meta.env.BASE_URL, location.origin)).href;
}

/** Sends the browser to the provider; it comes back to /signin with `code` and `state`. */
export async function beginSignIn(oidc: OidcConfig): Promise<void> {
  const { authorization_endpoint } = await discover(oidc.issuer);
  const verifier = randomString(32);
  const state = randomString(16);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const url = new URL(authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(), scope: oidc.scope ?? "openid",
    state, code_challenge: challenge, code_challenge_method: "S256", ...(oidc.audience ? { audience: oidc.audience } : {}),
  }).toString();
  location.assign(url.href);
}

/** The token from the provider's redirect back (or null when this page load is not one); clears the address bar.
 *  Throws, with the reason, on a redirect this tab did not start, a foreign `state` or `iss`, or the provider's
 *  error (the user denied consent, say). */
export async function finishSignIn(oidc: OidcConfig): Promise<string | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return null;
  const pending = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  history.replaceState(history.state, "", location.pathname);
  if (!pending) throw new Error("OIDC sign-in: this tab did not start a sign-in (start again)");
  const { verifier, state } = JSON.parse(pending) as { verifier: string; state: string };
  if (params.get("state") !== state) throw new Error("OIDC sign-in: the state does not match (start again)");
  const iss = params.get("iss"); // RFC 9207: which provider answered (a mix-up defence)
  if (iss !== null && iss.replace(/\/$/, "") !== oidc.issuer.replace(/\/$/, ""))
    throw new Error(`OIDC sign-in: the answer came from ${iss}, not ${oidc.issuer}`);
  if (error || !code) throw new Error(`OIDC sign-in: ${describe(error ?? "no code", params.get("error_description"))}`);
  const { token_endpoint } = await discover(oidc.issuer);
  const res = await fetch(token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirectUri(), client_id: oidc.client_id, code_verifier: verifier }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; id_token?: string; error?: string; error_description?: string };
  if (!res.ok) throw new Error(`OIDC token exchange: HTTP ${res.status}${body.error ? `: ${describe(body.error, body.error_description)}` : ""}`);
  const token = body.access_token ?? body.id_token;
  if (!token) throw new Error("OIDC token exchange: the provider returned no token");
  return token;
}

function describe(error: string, description: string | null | undefined): string {
  return description ? `${error} (${description})` : error;
}
