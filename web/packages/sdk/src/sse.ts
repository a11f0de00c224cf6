// One resumable Server-Sent Events reader over fetch (eventsource-parser): it reconnects after a dropped or failed
// connection with backoff, from the cursor the caller's `step` advanced, so no message is lost or repeated.

import { createParser, type EventSourceMessage } from "eventsource-parser";

import { ProblemError } from "./errors.js";
import type { StreamStatus } from "./types.js";

/** What the reader does with one message: items to yield, the new cursor, and whether the stream is over
 * (`end`) or must be reopened from the cursor (`reconnect`, e.g. after `resync` or an expired credential). */
export interface Step<T> {
  items?: T[];
  cursor?: number | null;
  action?: "continue" | "end" | "reconnect";
  status?: StreamStatus;
}

export interface ResumableStream<T> {
  /** Open the stream from `cursor` (null: from now). Must return the raw response. */
  connect: (cursor: number | null, signal: AbortSignal) => Promise<Response>;
  step: (message: EventSourceMessage, cursor: number | null) => Step<T>;
  cursor: number | null;
  signal?: AbortSignal | undefined;
  onStatus?: ((status: StreamStatus) => void) | undefined;
  maxBackoffMs: number;
}

const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

/** The stream's items, across reconnections, until it ends or `signal` aborts (then it returns quietly). A
 * refusal that retrying cannot fix (401, 403, 404, ...) is thrown as a ProblemError. */
export async function* resumable<T>(stream: ResumableStream<T>): AsyncGenerator<T, void, undefined> {
  let cursor = stream.cursor;
  let attempt = 0;
  const outer = stream.signal;
  while (!outer?.aborted) {
    const inner = new AbortController();
    const abort = (): void => inner.abort(outer?.reason);
    outer?.addEventListener("abort", abort, { once: true });
    let failure: unknown = null;
    let retryAfterMs = 0;
    try {
      stream.onStatus?.({ state: "connecting", resumeFrom: cursor });
      const response = await stream.connect(cursor, inner.signal);
      if (!response.ok || !response.body) {
        const problem = await ProblemError.read(response);
        if (!RETRYABLE.has(response.status)) throw problem;
        failure = problem;
        retryAfterMs = (problem.retryAfterS ?? 0) * 1000;
      } else {
        stream.onStatus?.({ state: "open", resumeFrom: cursor });
        for await (const message of messages(response.body)) {
          const step = stream.step(message, cursor);
          if (step.cursor !== undefined) cursor = step.cursor;
          if (step.status) stream.onStatus?.(step.status);
          if (step.items?.length) {
            attempt = 0; // this connection worked: the next failure starts the backoff over
            yield* step.items;
          }
          if (step.action === "end") {
            stream.onStatus?.({ state: "closed" });
            return;
          }
          if (step.action === "reconnect") break;
        }
      }
    } catch (error) {
      if (outer?.aborted) break;
      if (error instanceof ProblemError && !RETRYABLE.has(error.status)) throw error;
      failure = error;
    } finally {
      outer?.removeEventListener("abort", abort);
      inner.abort();
    }
    if (outer?.aborted) break;
    const delayMs = Math.max(retryAfterMs, backoff(attempt, stream.maxBackoffMs));
    attempt += 1;
    stream.onStatus?.({ state: "reconnecting", attempt, delayMs, error: failure });
    await sleep(delayMs, outer);
  }
  stream.onStatus?.({ state: "closed" });
}

/** Exponential backoff with full jitter: 0 for the first retry after a working connection, then up to max. */
function backoff(attempt: number, maxMs: number): number {
  if (attempt === 0) return 0;
  return Math.random() * Math.min(maxMs, 250 * 2 ** (attempt - 1));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The SSE messages of a response body, as they are parsed. */
async function* messages(body: ReadableStream<Uint8Array>): AsyncGenerator<EventSourceMessage, void, undefined> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => queue.push(message) });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
      while (queue.length) yield queue.shift() as EventSourceMessage;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
