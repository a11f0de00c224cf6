// Sign-in: paste a bearer token, or sign in with the configured OIDC provider (authorization code + PKCE).

import { useState, type FormEvent } from "react";
import type { ConsoleConfig } from "../../app/config";
import { beginSignIn } from "../../app/oidc";

interface Props {
  config: ConsoleConfig;
  error?: string | undefined;
  onToken(token: string): void;
}

export function SignInPage({ config, error, onToken }: Props) {
  const [token, setToken] = useState("");
  const [failure, setFailure] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (token.trim()) onToken(token.trim());
  };
  return (
    <main className="mx-auto mt-24 max-w-md rounded-lg border border-slate-200 p-6 shadow-sm dark:border-slate-800">
      <h1 className="mb-4 text-xl font-semibold">Sign in to xrunner</h1>
      {error && <p role="alert" className="mb-4 rounded bg-red-50 p-2 text-sm text-red-800 dark:bg-red-950 dark:text-red-200">{error}</p>}
      {config.auth.oidc && (
        <button type="button" onClick={() => { const o = config.auth.oidc; if (o) beginSignIn(o).catch((e: unknown) => setFailure(String(e))); }}
          className="mb-6 w-full rounded bg-indigo-700 px-3 py-2 text-white hover:bg-indigo-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-500">
          Sign in with {new URL(config.auth.oidc.issuer).host}
        </button>
      )}
      {failure && <p role="alert" className="mb-4 text-sm text-red-800 dark:text-red-200">{failure}</p>}
      {config.auth.token && (
        <form onSubmit={submit} className="flex flex-col gap-2">
          <label htmlFor="token" className="text-sm font-medium">Bearer token</label>
          <textarea id="token" value={token} onChange={(e) => setToken(e.target.value)} rows={4}
            className="rounded border border-slate-300 bg-transparent p-2 font-mono text-xs dark:border-slate-700" />
          <p className="text-xs text-slate-600 dark:text-slate-400">
            <code>xrunner up</code> prints a link that signs you in directly. The token stays in this tab only.
          </p>
          <button type="submit" className="self-start rounded bg-indigo-700 px-3 py-1.5 text-white hover:bg-indigo-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-500">
            Sign in
          </button>
        </form>
      )}
    </main>
  );
}
