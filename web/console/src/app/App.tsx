// The route table and the boot sequence: config, then the session (or the sign-in page when there is none).

import { useCallback, useEffect, useState } from "react";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";
import { AdminPage } from "../pages/admin/AdminPage";
import { JobPage } from "../pages/job/JobPage";
import { JobsPage } from "../pages/jobs/JobsPage";
import { SignInPage } from "../pages/signin/SignInPage";
import { StatsPage } from "../pages/stats/StatsPage";
import { SubmitPage } from "../pages/submit/SubmitPage";
import { makeClient, type Principal } from "./client";
import { loadConfig, type ConsoleConfig } from "./config";
import { LiveEvents } from "./live";
import { finishSignIn } from "./oidc";
import { SessionProvider, type ConsoleSession } from "./session";
import { Shell } from "./Shell";
import { forgetToken, storedToken, storeToken } from "./token";

type Boot =
  | { phase: "loading" }
  | { phase: "failed"; error: string }
  | { phase: "ready"; config: ConsoleConfig; session: ConsoleSession | null; error?: string };

/** The router's basename: the build's base path without its trailing slash ("/console"). */
const BASENAME = import.meta.env.BASE_URL.replace(/\/$/, "");

export function App() {
  const [boot, setBoot] = useState<Boot>({ phase: "loading" });
  const signIn = useCallback(async (config: ConsoleConfig, token: string | null) => {
    setBoot(await startSession(config, token, () => signOut(config)));
    function signOut(c: ConsoleConfig) {
      forgetToken();
      setBoot({ phase: "ready", config: c, session: null });
    }
  }, []);
  useEffect(() => {
    loadConfig().then(
      async (config) => {
        try {
          const fromProvider = config.auth.oidc ? await finishSignIn(config.auth.oidc) : null;
          await signIn(config, fromProvider ?? storedToken());
        } catch (e) {
          setBoot({ phase: "ready", config, session: null, error: e instanceof Error ? e.message : String(e) });
        }
      },
      (e: unknown) => setBoot({ phase: "failed", error: String(e) }),
    );
  }, [signIn]);
  if (boot.phase === "loading") return <p className="p-8 text-slate-500">Loading…</p>;
  if (boot.phase === "failed") return <p role="alert" className="p-8 text-red-700">Console unavailable: {boot.error}</p>;
  return <Router boot={boot} onToken={(token) => signIn(boot.config, token)} />;
}

function Router({ boot, onToken }: { boot: Extract<Boot, { phase: "ready" }>; onToken: (token: string) => void }) {
  const signin = <SignInPage config={boot.config} error={boot.error} onToken={onToken} />;
  if (!boot.session)
    return (
      <BrowserRouter basename={BASENAME}>
        <Routes>
          <Route path="/signin" element={signin} />
          <Route path="*" element={<Navigate to="/signin" replace />} />
        </Routes>
      </BrowserRouter>
    );
  return (
    <BrowserRouter basename={BASENAME}>
      <SessionProvider value={boot.session}>
        <Routes>
          <Route path="/signin" element={<Navigate to="/" replace />} />
          <Route element={<Shell />}>
            <Route index element={<JobsPage />} />
            <Route path="jobs/:id" element={<JobPage />} />
            <Route path="submit" element={<SubmitPage />} />
            <Route path="stats" element={<StatsPage />} />
            <Route path="admin" element={<AdminPage />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </SessionProvider>
    </BrowserRouter>
  );
}

async function startSession(config: ConsoleConfig, token: string | null, signOut: () => void): Promise<Boot> {
  if (!token) return { phase: "ready", config, session: null };
  const client = makeClient(config, token);
  let principal: Principal;
  try {
    principal = await client.whoami();
  } catch (e) {
    forgetToken();
    return { phase: "ready", config, session: null, error: `Sign-in failed: ${String(e)}` };
  }
  storeToken(token);
  const can = (scope: string) => principal.scopes.includes(scope) || principal.scopes.includes("admin");
  const live = new LiveEvents(client);
  void live.start();
  const end = () => { live.stop(); signOut(); };
  return { phase: "ready", config, session: { config, client, principal, live, can, signOut: end } };
}

function NotFound() {
  return (
    <main className="p-8">
      <h1 className="text-xl font-semibold">Page not found</h1>
    </main>
  );
}

