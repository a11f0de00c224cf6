// "Why is it waiting": the gateway's explain (the scheduler's reason, the job's position and ETA), asked again at
// each of the job's events and every few seconds while it waits (the scheduler republishes its snapshot; there is
// no stream of it).

import { useEffect, useState } from "react";
import type { Explain } from "@xrunner/sdk";
import { useConsole } from "../../app/session";

const REFRESH_MS = 3_000;

const REASONS: Record<Explain["reason"], string> = {
  tenant_at_max_inflight: "your tenant has as many jobs in flight as its limit allows",
  pool_full: "every slot in the pool is taken",
  no_worker_fits: "no worker has the resources this job asks for",
  backoff: "waiting out the retry backoff",
  rate_limited: "your tenant's dispatch rate is used up",
  next_round: "other tenants' turn under fair share; next round",
  not_queued: "not in the queue",
};

export function WhyWaiting({ jobId, revision }: { jobId: string; revision: number }) {
  const { client } = useConsole();
  const [explain, setExplain] = useState<Explain | null>(null);
  useEffect(() => {
    let current = true;
    const ask = () => client.jobs.explain(jobId).then((e) => current && setExplain(e), () => undefined);
    void ask();
    const timer = window.setInterval(ask, REFRESH_MS);
    return () => {
      current = false;
      window.clearInterval(timer);
    };
  }, [client, jobId, revision]);
  if (!explain) return null;
  return (
    <section aria-labelledby="why-title" data-testid="why-waiting" className="rounded border border-amber-300 bg-amber-50 p-3 text-sm dark:border-amber-700 dark:bg-amber-950/40">
      <h2 id="why-title" className="font-semibold">Why is it waiting?</h2>
      <p>
        {REASONS[explain.reason] ?? explain.reason}
        {explain.detail ? ` — ${explain.detail}` : ""}
      </p>
      <dl className="mt-1 flex flex-wrap gap-x-6 text-xs text-slate-600 dark:text-slate-300">
        {explain.position != null && (<><dt className="sr-only">Position</dt><dd>position {explain.position}</dd></>)}
        {explain.eta_s != null && (<><dt className="sr-only">Estimated start</dt><dd>starts in ~{formatEta(explain.eta_s)}</dd></>)}
        {explain.pool && (<><dt className="sr-only">Pool</dt><dd>pool {explain.pool}</dd></>)}
        {explain.snapshot_at && (<><dt className="sr-only">As of</dt><dd>as of {new Date(explain.snapshot_at).toLocaleTimeString()}</dd></>)}
      </dl>
    </section>
  );
}

function formatEta(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
