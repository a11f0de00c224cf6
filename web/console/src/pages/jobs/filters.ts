// The jobs list's filters: kept in the URL's query (shareable, survives a reload), turned into the API's query.

import type { JobQuery, JobState, JobView } from "@xrunner/sdk";

export const STATES: readonly JobState[] = [
  "submitted", "queued", "dispatched", "running", "succeeded", "failed", "timed_out", "cancelled", "expired", "rejected",
];

export const PERIODS = { "": "any time", "15m": "last 15 minutes", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days" } as const;
export type Period = keyof typeof PERIODS;
const PERIOD_MS: Record<Exclude<Period, "">, number> = { "15m": 9e5, "1h": 3.6e6, "24h": 8.64e7, "7d": 6.048e8 };

export interface Filters {
  states: JobState[];
  label: string; // key=value, or empty
  period: Period;
  createdAfter: string | null; // ISO time, fixed when the filters are read
}

export function readFilters(params: URLSearchParams, now: number): Filters {
  const states = (params.get("state") ?? "").split(",").filter((s): s is JobState => (STATES as string[]).includes(s));
  const raw = params.get("since") ?? "";
  const period: Period = raw in PERIODS ? (raw as Period) : "";
  const createdAfter = period ? new Date(now - PERIOD_MS[period]).toISOString() : null;
  return { states, label: params.get("label") ?? "", period, createdAfter };
}

export function toQuery(f: Filters, limit: number): JobQuery {
  return {
    limit,
    ...(f.states.length ? { state: f.states } : {}),
    ...(validLabel(f.label) ? { label: [f.label.trim()] } : {}),
    ...(f.createdAfter ? { created_after: f.createdAfter } : {}),
  };
}

export function validLabel(label: string): boolean {
  return /^[^=\s]+=.*$/.test(label.trim());
}

/** Whether a job (new from a live event) belongs in the filtered list. */
export function matches(job: JobView, f: Filters): boolean {
  if (f.states.length && !f.states.includes(job.state)) return false;
  if (f.createdAfter && job.created_at < f.createdAfter) return false;
  if (validLabel(f.label)) {
    const [key = "", ...rest] = f.label.trim().split("=");
    if (job.spec.labels?.[key] !== rest.join("=")) return false;
  }
  return true;
}
