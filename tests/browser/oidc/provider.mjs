// A local OpenID Connect provider for the console's OIDC sign-in test (panva's oidc-provider, in memory).
//
// One public client (no secret, PKCE S256 required) whose redirect URI is the console's /console/signin, CORS for
// the console's origin, the built-in development login and consent pages (any login name, any password), and
// access tokens as RS256 JWTs for one audience carrying a `tenant` claim: the part of the login name after "@"
// ("alice@acme" acts for tenant "acme"; a login without "@" gets no tenant claim, which xrunner refuses).
//
//   node provider.mjs --console-origin http://127.0.0.1:8700 --client-id xrunner-console \
//        --audience urn:xrunner:api --scope "jobs:read jobs:write"
//
// It listens on a free loopback port and prints one JSON line, {"issuer": ...}, once it serves. (oidc-provider 9
// warns "Unsupported runtime" on Node.js 20, which it does not test on; the flows this test drives work there.)

import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

import Provider, { errors } from "oidc-provider";

const { values: opts } = parseArgs({
  options: {
    "console-origin": { type: "string" },
    "client-id": { type: "string", default: "xrunner-console" },
    audience: { type: "string", default: "urn:xrunner:api" },
    scope: { type: "string", default: "jobs:read jobs:write" },
  },
});
if (!opts["console-origin"]) throw new Error("--console-origin is required");
const consoleOrigin = new URL(opts["console-origin"]).origin;

function signingKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", alg: "RS256", use: "sig" };
}

function tenantOf(accountId) {
  const at = accountId.lastIndexOf("@");
  return at > 0 ? accountId.slice(at + 1) : undefined;
}

function configuration() {
  const resourceServer = {
    audience: opts.audience, scope: opts.scope, accessTokenFormat: "jwt", accessTokenTTL: 900,
    jwt: { sign: { alg: "RS256" } },
  };
  return {
    clients: [{
      client_id: opts["client-id"], token_endpoint_auth_method: "none", application_type: "web",
      grant_types: ["authorization_code"], response_types: ["code"],
      redirect_uris: [`${consoleOrigin}/console/signin`],
    }],
    jwks: { keys: [signingKey()] },
    pkce: { required: () => true },
    clientBasedCORS: (_ctx, origin) => origin === consoleOrigin,
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The console asks for no resource: every authorization is for the one audience, and the code's token
        // request (which names none) gets the granted one rather than an opaque token for userinfo.
        defaultResource: () => opts.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== opts.audience) throw new errors.InvalidTarget();
          return resourceServer;
        },
      },
    },
    extraTokenClaims: (_ctx, token) => {
      const tenant = token.kind === "AccessToken" ? tenantOf(token.accountId) : undefined;
      return tenant ? { tenant } : undefined;
    },
  };
}

const server = createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on("request", provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
