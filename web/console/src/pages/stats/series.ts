// The stats page's numbers over time, without a DOM: each snapshot of GET /v1/stats adds one point per gauge
// (a snapshot the scheduler has not republished adds nothing), kept in fixed-size windows, drawn as SVG paths.

import type { StatsView } from "@xrunner/sdk";

/** Points each sparkline keeps: two minutes at one snapshot a second. */
export const WINDOW = 120;

export type Gauge = "running" | "queued" | "oldest_wait_s" | "dispatch_p50_ms" | "dispatch_p99_ms";
export const GAUGES: readonly Gauge[] = ["running", "queued", "oldest_wait_s", "dispatch_p50_ms", "dispatch_p99_ms"];

/** The snapshot's values of each gauge (null when the scheduler has no measure yet). */
export function readings(stats: StatsView): Record<Gauge, number | null> {
  const extra = stats as StatsView & { dispatch_p50_ms?: number | null; dispatch_p99_ms?: number | null };
  const worst = (pick: (t: StatsView["tenants"][number]) => number | null) =>
    stats.tenants.reduce<number | null>((most, t) => {
      const value = pick(t);
      return value === null ? most : Math.max(most ?? value, value);
    }, null);
  const waits = [...stats.pools.map((p) => p.oldest_wait_s), ...stats.tenants.map((t) => t.oldest_wait_s)];
  return {
    running: stats.running_total,
    queued: stats.queued_total,
    oldest_wait_s: waits.length ? Math.max(...waits) : 0,
    dispatch_p50_ms: extra.dispatch_p50_ms !== undefined ? extra.dispatch_p50_ms : worst((t) => t.dispatch_p50_ms),
    dispatch_p99_ms: extra.dispatch_p99_ms !== undefined ? extra.dispatch_p99_ms : worst((t) => t.dispatch_p99_ms),
  };
}

export interface History {
  at: string | null;
  series: Record<Gauge, (number | null)[]>;
}

export function emptyHistory(): History {
  return { at: null, series: { running: [], queued: [], oldest_wait_s: [], dispatch_p50_ms: [], dispatch_p99_ms: [] } };
}

/** `history` with the snapshot's readings added (unchanged when it is the snapshot already recorded). */
export function record(history: History, stats: StatsView, window: number = WINDOW): History {
  if (stats.at === null || stats.at === history.at) return history;
  const now = readings(stats);
  const series = { ...history.series };
  for (const gauge of GAUGES) series[gauge] = [...history.series[gauge], now[gauge]].slice(-window);
  return { at: stats.at, series };
}

/** An SVG path through `values` in a `width` × `height` box, scaled to the largest (gaps where a value is null). */
export function sparkline(values: readonly (number | null)[], width: number, height: number): string {
  const known = values.filter((v): v is number => v !== null);
  if (known.length === 0) return "";
  const top = Math.max(...known, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  let path = "";
  let pen = false;
  values.forEach((value, i) => {
    if (value === null) {
      pen = false;
      return;
    }
    const x = (i * step).toFixed(1);
    const y = (height - (value / top) * height).toFixed(1);
    path += `${pen ? "L" : "M"}${x},${y}`;
    pen = true;
  });
  return path;
}

/** How full something is: `used` of `limit` as 0..1 (a zero limit that is used counts as full). */
export function fill(used: number, limit: number): number {
  if (limit <= 0) return used > 0 ? 1 : 0;
  return Math.min(1, Math.max(0, used / limit));
}

export function level(fraction: number): "ok" | "warn" | "full" {
  return fraction >= 1 ? "full" : fraction >= 0.8 ? "warn" : "ok";
}
