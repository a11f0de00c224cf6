// /stats — live gauges with two-minute sparklines (running, queued, oldest wait, dispatch latency p50/p99), each
// tenant's inflight and queue against its limits, and the pools' workers and free slots. The backend publishes its
// snapshot about once a second and offers no stream of it, so the page reads it once a second while visible.

import { useEffect, useState } from "react";
import type { StatsView } from "@xrunner/sdk";
import { useConsole } from "../../app/session";
import { emptyHistory, fill, level, readings, record, sparkline, type Gauge, type History } from "./series";

const REFRESH_MS = 1_000;

const TITLES: Record<Gauge, [string, (v: number) => string]> = {
  running: ["Running", (v) => v.toLocaleString()],
  queued: ["Queued", (v) => v.toLocaleString()],
  oldest_wait_s: ["Oldest wait", (v) => `${v.toFixed(1)} s`],
  dispatch_p50_ms: ["Dispatch p50", (v) => `${v.toFixed(1)} ms`],
  dispatch_p99_ms: ["Dispatch p99", (v) => `${v.toFixed(1)} ms`],
};

export function StatsPage() {
  const { client } = useConsole();
  const [stats, setStats] = useState<StatsView | null>(null);
  const [history, setHistory] = useState<History>(emptyHistory);
  const [error, setError] = useState("");

  useEffect(() => {
    let timer = 0;
    let stopped = false;
    async function tick() {
      if (document.visibilityState === "visible") {
        try {
          const next = await client.stats();
          if (stopped) return;
          setStats(next);
          setHistory((h) => record(h, next));
          setError("");
        } catch (e) {
          if (!stopped) setError(String(e));
        }
      }
      if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
    }
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [client]);

  const now = stats ? readings(stats) : null;
  return (
    <main className="mx-auto max-w-6xl space-y-6 p-6">
      <div className="flex items-baseline gap-3">
        <h1 className="text-xl font-semibold">Stats</h1>
        <span className="text-xs text-slate-500 dark:text-slate-400" aria-live="polite">
          {stats?.at ? `scheduler snapshot of ${new Date(stats.at).toLocaleTimeString()}` : stats ? "no snapshot from the scheduler yet" : "loading…"}
        </span>
      </div>
      {error && <p role="alert" className="text-sm text-red-700 dark:text-red-400">Stats unavailable: {error}</p>}
      <section aria-label="Gauges" className="grid grid-cols-2 gap-3 md:grid-cols-5">
        {(Object.keys(TITLES) as Gauge[]).map((gauge) => (
          <GaugeCard key={gauge} gauge={gauge} value={now?.[gauge] ?? null} values={history.series[gauge]} />
        ))}
      </section>
      {stats && <Tenants stats={stats} />}
      {stats && <Pools stats={stats} />}
    </main>
  );
}

function GaugeCard({ gauge, value, values }: { gauge: Gauge; value: number | null; values: readonly (number | null)[] }) {
  const [title, format] = TITLES[gauge];
  const path = sparkline(values, 120, 32);
  return (
    <figure data-testid={`gauge-${gauge}`} className="rounded border border-slate-200 p-3 dark:border-slate-700">
      <figcaption className="text-xs text-slate-500 dark:text-slate-400">{title}</figcaption>
      <p className="text-2xl font-semibold tabular-nums">{value === null ? "—" : format(value)}</p>
      <svg viewBox="0 0 120 32" preserveAspectRatio="none" className="mt-1 h-8 w-full text-indigo-500" role="img" aria-label={`${title}, last ${values.length} readings`}>
        {path && <path d={path} fill="none" stroke="currentColor" strokeWidth="1.5" vectorEffect="non-scaling-stroke" />}
      </svg>
    </figure>
  );
}

const BAR: Record<"ok" | "warn" | "full", string> = { ok: "bg-emerald-500", warn: "bg-amber-500", full: "bg-red-500" };

function Meter({ used, limit, label }: { used: number; limit: number; label: string }) {
  const f = fill(used, limit);
  return (
    <div className="flex items-center gap-2">
      <div role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={limit} aria-valuenow={used}
        className="h-2 w-28 overflow-hidden rounded bg-slate-200 dark:bg-slate-700">
        <div className={`h-full ${BAR[level(f)]} transition-[width] duration-300`} style={{ width: `${f * 100}%` }} />
      </div>
      <span className="tabular-nums">{used.toLocaleString()} / {limit.toLocaleString()}</span>
    </div>
  );
}

const ms = (v: number | null) => (v === null ? "—" : `${v.toFixed(1)} ms`);
const TH = "px-2 py-1 font-medium";
const TD = "px-2 py-1";

function Tenants({ stats }: { stats: StatsView }) {
  const tenants = [...stats.tenants].sort((a, b) => a.tenant.localeCompare(b.tenant));
  return (
    <section aria-labelledby="tenants-title" className="space-y-2">
      <h2 id="tenants-title" className="text-lg font-semibold">Tenants</h2>
      {tenants.length === 0 ? <p className="text-sm text-slate-600 dark:text-slate-400">No tenant has jobs in the scheduler's snapshot.</p> : (
        <div className="overflow-x-auto">
          <table data-testid="tenants" className="w-full text-left text-sm">
            <thead className="text-xs text-slate-500 dark:text-slate-400">
              <tr><th className={TH}>Tenant</th><th className={TH}>In flight / limit</th><th className={TH}>Queued / limit</th><th className={TH}>Oldest wait</th><th className={TH}>p50</th><th className={TH}>p99</th><th className={TH}>Share</th><th className={TH}>Weight</th></tr>
            </thead>
            <tbody>
              {tenants.map((t) => (
                <tr key={t.tenant} className="border-t border-slate-200 dark:border-slate-800">
                  <td className={`${TD} font-mono`}>{t.tenant}</td>
                  <td className={TD}><Meter used={t.dispatched + t.running} limit={t.limits.max_inflight} label={`${t.tenant} in flight`} /></td>
                  <td className={TD}><Meter used={t.queued} limit={t.limits.max_queued} label={`${t.tenant} queued`} /></td>
                  <td className={`${TD} tabular-nums`}>{t.oldest_wait_s.toFixed(1)} s</td>
                  <td className={`${TD} tabular-nums`}>{ms(t.dispatch_p50_ms)}</td>
                  <td className={`${TD} tabular-nums`}>{ms(t.dispatch_p99_ms)}</td>
                  <td className={`${TD} tabular-nums`}>{(t.dominant_share * 100).toFixed(0)} %</td>
                  <td className={`${TD} tabular-nums`}>{t.limits.weight}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Pools({ stats }: { stats: StatsView }) {
  return (
    <section aria-labelledby="pools-title" className="space-y-2">
      <h2 id="pools-title" className="text-lg font-semibold">Pools and workers</h2>
      {stats.pools.length === 0 ? <p className="text-sm text-slate-600 dark:text-slate-400">No pool has a worker.</p> : (
        <div className="overflow-x-auto">
          <table data-testid="pools" className="w-full text-left text-sm">
            <thead className="text-xs text-slate-500 dark:text-slate-400">
              <tr><th className={TH}>Pool</th><th className={TH}>Workers</th><th className={TH}>Busy slots / slots</th><th className={TH}>Free slots</th><th className={TH}>Running</th><th className={TH}>Queued</th><th className={TH}>Oldest wait</th><th className={TH}>CPU / memory / GPU</th></tr>
            </thead>
            <tbody>
              {stats.pools.map((p) => (
                <tr key={p.pool} className="border-t border-slate-200 dark:border-slate-800">
                  <td className={`${TD} font-mono`}>{p.pool}</td>
                  <td className={`${TD} tabular-nums`}>{p.workers}</td>
                  <td className={TD}><Meter used={p.slots - p.free_slots} limit={p.slots} label={`${p.pool} busy slots`} /></td>
                  <td className={`${TD} tabular-nums`}>{p.free_slots}</td>
                  <td className={`${TD} tabular-nums`}>{p.running}</td>
                  <td className={`${TD} tabular-nums`}>{p.queued}</td>
                  <td className={`${TD} tabular-nums`}>{p.oldest_wait_s.toFixed(1)} s</td>
                  <td className={`${TD} tabular-nums`}>{(p.cpu_millis / 1000).toFixed(1)} CPU · {p.memory_mib.toLocaleString()} MiB · {p.gpu}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
