// The realtime edge's two streams as async iterators: the tenant's job events (resumed by stream sequence) and one
// job's output (resumed by byte offset), each reconnecting by itself.

import type { EventSourceMessage } from "eventsource-parser";

import { resumable, type Step } from "./sse.js";
import type { JobEvent, JobEventType, LogChunkEvent, StreamEvent, StreamStatus } from "./types.js";

/** How a stream request is authenticated: the query parameters and headers to add (a ticket or a bearer token). */
export type StreamCredentials = () => Promise<{ query: Record<string, string>; headers: Record<string, string> }>;

export interface StreamContext {
  realtimeUrl: string;
  credentials: StreamCredentials;
  fetch: typeof fetch;
  maxBackoffMs: number;
}

export interface EventsOptions {
  /** Only these jobs' events. */
  jobs?: string[];
  /** Only events of these tags. */
  types?: JobEventType[];
  /** Resume after this stream sequence (a `StreamEvent.id`); absent: from now on. */
  since?: number;
  signal?: AbortSignal;
  onStatus?: (status: StreamStatus) => void;
}

export interface LogsOptions {
  /** Start at this byte offset of the current attempt's output (a `LogChunkEvent.offset`); default 0. */
  offset?: number;
  signal?: AbortSignal;
  onStatus?: (status: StreamStatus) => void;
}

async function open(ctx: StreamContext, path: string, query: [string, string][], signal: AbortSignal): Promise<Response> {
  const { query: auth, headers } = await ctx.credentials();
  const params = new URLSearchParams([...query, ...Object.entries(auth)]);
  const search = params.size ? `?${params}` : "";
  return ctx.fetch(`${ctx.realtimeUrl}${path}${search}`, {
    headers: { Accept: "text/event-stream", ...headers },
    signal,
    cache: "no-store",
  });
}

/** The tenant's job events, live, resuming from the last one seen after any disconnect (no loss, no repeats). */
export function jobEvents<E extends JobEvent = JobEvent>(
  ctx: StreamContext,
  options: EventsOptions = {},
): AsyncGenerator<StreamEvent<E>, void, undefined> {
  const filters: [string, string][] = [
    ...(options.jobs ?? []).map((job): [string, string] => ["job", job]),
    ...(options.types ?? []).map((type): [string, string] => ["type", subjectToken(type)]),
  ];
  return resumable<StreamEvent<E>>({
    // `position`: the edge opens with the sequence it starts after, so even a stream that drops before its
    // first event resumes without a gap
    connect: (cursor, signal) => open(ctx, "/v1/events",
      [...filters, ["position", "true"], ...(cursor === null ? [] : [["since", String(cursor)] as [string, string]])],
      signal),
    step: (message, cursor) => eventStep<E>(message, cursor),
    cursor: options.since ?? null,
    signal: options.signal,
    onStatus: options.onStatus,
    maxBackoffMs: ctx.maxBackoffMs,
  });
}

/** The edge filters by an event's subject token: `succeeded` for `job.succeeded.v1`, `artifact_stored` for
 * `artifact.stored.v1` (xrunner.contracts.events.type_token). */
export function subjectToken(tag: string): string {
  const [aggregate = "", name = ""] = tag.split(".");
  return aggregate === "job" ? name : `${aggregate}_${name}`;
}

function eventStep<E extends JobEvent>(message: EventSourceMessage, cursor: number | null): Step<StreamEvent<E>> {
  if (message.event === "resync") {
    // the edge dropped us for falling behind: reopen from the last event seen, which the log still has
    return { action: "reconnect", status: { state: "resync", resumeFrom: cursor } };
  }
  // the credential ran out (no id; `expired` with an id is a job.expired.v1 event)
  if (message.event === "expired" && !message.id) return { action: "reconnect" };
  const id = Number(message.id);
  if (!message.id || !Number.isSafeInteger(id)) return {};
  if (message.event === "position") return { cursor: cursor === null ? id : Math.max(cursor, id) };
  if (cursor !== null && id <= cursor) return { cursor }; // already delivered before a reconnect
  return { items: [{ id, event: JSON.parse(message.data) as E }], cursor: id };
}

const OUTPUT = new Set(["stdout", "stderr", "system"]);

/** The job's output (its current attempt) from `offset`, live, until the job's output ends; resumes by offset. */
export function jobLogs(ctx: StreamContext, jobId: string, options: LogsOptions = {}):
    AsyncGenerator<LogChunkEvent, void, undefined> {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/logs/stream`;
  return resumable<LogChunkEvent>({
    connect: (cursor, signal) => open(ctx, path, [["offset", String(cursor ?? 0)]], signal),
    step: (message, cursor) => logStep(message, cursor),
    cursor: options.offset ?? 0,
    signal: options.signal,
    onStatus: options.onStatus,
    maxBackoffMs: ctx.maxBackoffMs,
  });
}

function logStep(message: EventSourceMessage, cursor: number | null): Step<LogChunkEvent> {
  const offset = Number(message.id);
  if (message.event === "end") {
    const items = message.data ? [{ stream: "stdout" as const, text: message.data, offset: offset || (cursor ?? 0) }] : [];
    return { items, action: "end" };
  }
  if (message.event === "expired") return { action: "reconnect" };
  if (!message.event || !OUTPUT.has(message.event) || !Number.isSafeInteger(offset)) return {};
  const stream = message.event as LogChunkEvent["stream"];
  return { items: [{ stream, text: message.data, offset }], cursor: offset };
}
