// A job's timeline: its events from the log (GET /v1/jobs/{id}/events) and live from the tenant's stream, merged
// by stream sequence so each appears once and in order, with a one-line summary and the payload to show.

import type { HistoryEntry, JobEvent } from "@xrunner/sdk";

export interface TimelineEntry {
  seq: number;
  type: string;
  at: string;
  attempt: number;
  payload: Record<string, unknown>;
}

/** Fields every event carries that the timeline already shows (or that say nothing on a job's own page). */
const SHOWN = new Set(["type", "event_id", "occurred_at", "job_id", "tenant", "attempt"]);

export function fromHistory(entry: HistoryEntry): TimelineEntry {
  return { seq: entry.seq, type: entry.type, at: entry.occurred_at, attempt: entry.attempt, payload: entry.event };
}

export function fromLive(event: JobEvent, seq: number): TimelineEntry {
  const payload = event as unknown as Record<string, unknown>;
  const attempt = typeof payload["attempt"] === "number" ? payload["attempt"] : 0;
  return { seq, type: event.type, at: event.occurred_at, attempt, payload };
}

/** `entries` with `incoming` added: ordered by sequence, a sequence already held kept once. */
export function merge(entries: readonly TimelineEntry[], incoming: readonly TimelineEntry[]): TimelineEntry[] {
  const bySeq = new Map<number, TimelineEntry>();
  for (const entry of entries) bySeq.set(entry.seq, entry);
  for (const entry of incoming) if (!bySeq.has(entry.seq)) bySeq.set(entry.seq, entry);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** "job.timed_out.v1" → "timed out"; "artifact.stored.v1" → "artifact stored". */
export function label(type: string): string {
  const [family = "", what = type] = type.split(".");
  const words = what.replace(/_/g, " ");
  return family === "job" ? words : `${family} ${words}`;
}

export type Tone = "ok" | "bad" | "warn" | "info";

export function tone(type: string): Tone {
  if (/^job\.(succeeded|queued|started)\./.test(type)) return "ok";
  if (/^job\.(failed|rejected|timed_out|lost|expired)\./.test(type)) return "bad";
  if (/^job\.(cancel_requested|cancelled|retry_scheduled)\./.test(type)) return "warn";
  return "info";
}

function text(value: unknown): string {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : "";
}

/** One line saying what the event adds (the worker, the exit code, the reason …), or "" when nothing. */
export function summary(entry: TimelineEntry): string {
  const p = entry.payload;
  const parts: string[] = [];
  const add = (name: string, value: unknown) => {
    const shown = text(value);
    if (shown !== "") parts.push(`${name} ${shown}`);
  };
  add("attempt", entry.attempt > 1 ? entry.attempt : "");
  add("pool", p["pool"]);
  add("worker", p["worker_id"]);
  add("sandbox", p["sandbox"]);
  add("exit", p["exit_code"]);
  add("position", p["position"]);
  add("by", p["subject"] ?? p["requested_by"]);
  add("artifact", p["name"]);
  add("preview", p["kind"]);
  add("duration", typeof p["duration_s"] === "number" ? `${p["duration_s"].toFixed(2)} s` : "");
  add("timeout", typeof p["timeout_s"] === "number" ? `${p["timeout_s"]} s` : "");
  add("not before", p["not_before"]);
  const why = text(p["reason"]) || text(p["cause"]) || text(p["detail"]);
  if (why) parts.push(why);
  return parts.join(" · ");
}

/** The payload without what the row already shows, pretty-printed for a <pre> (text only, never markup). */
export function payloadText(entry: TimelineEntry): string {
  const rest = Object.fromEntries(Object.entries(entry.payload).filter(([key]) => !SHOWN.has(key)));
  return JSON.stringify(rest, null, 2);
}

/** The time since the first event, as the timeline's margin shows it: "+0.42 s", "+3 min 5 s". */
export function sinceStart(first: string, at: string): string {
  const ms = Date.parse(at) - Date.parse(first);
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 10_000) return `+${(ms / 1000).toFixed(2)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `+${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `+${min} min ${s % 60} s`;
  return `+${Math.floor(min / 60)} h ${min % 60} min`;
}
