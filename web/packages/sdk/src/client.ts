// The xrunner client: REST resources of the gateway and the artifacts service, the realtime edge's streams, and
// attach, sharing one configuration and credential.

import type { Client } from "openapi-fetch";

import { Attachment, opened } from "./attach.js";
import { isNode, resolveToken, trimSlash, type WebSocketConstructor, type XrunnerOptions } from "./options.js";
import {
  Artifacts, artifactsClient, gatewayClient, Jobs, stats, streamTicket, Tenants, whoami,
} from "./rest.js";
import { jobEvents, jobLogs, type EventsOptions, type LogsOptions, type StreamContext } from "./streams.js";
import type {
  GatewayPaths, JobEvent, LogChunkEvent, StatsView, StreamEvent, StreamTicket, Whoami,
} from "./types.js";

export class Xrunner {
  readonly jobs: Jobs;
  readonly tenants: Tenants;
  readonly artifacts: Artifacts;
  /** The typed openapi-fetch client of the gateway, for routes the resources do not wrap. */
  readonly gateway: Client<GatewayPaths>;
  private readonly options: XrunnerOptions;
  private readonly streams: StreamContext;

  constructor(options: XrunnerOptions) {
    this.options = options;
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.gateway = gatewayClient(options.gatewayUrl, options.token, fetchImpl);
    this.jobs = new Jobs(this.gateway);
    this.tenants = new Tenants(this.gateway);
    this.artifacts = new Artifacts(artifactsClient(options.artifactsUrl ?? options.gatewayUrl, options.token, fetchImpl));
    this.streams = {
      realtimeUrl: trimSlash(options.realtimeUrl ?? options.gatewayUrl),
      credentials: () => this.credentials(this.streamAuth()),
      fetch: fetchImpl,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
    };
  }

  whoami(): Promise<Whoami> {
    return whoami(this.gateway);
  }

  /** Pools, queues and the caller's tenant (every tenant for an admin). */
  stats(): Promise<StatsView> {
    return stats(this.gateway);
  }

  /** A one-time ticket (≤ 60 s) for one stream or attach connection; the SDK gets them itself when needed. */
  streamTicket(): Promise<StreamTicket> {
    return streamTicket(this.gateway);
  }

  /** The tenant's job events as they happen; resumes after a dropped connection from the last event seen. */
  events<E extends JobEvent = JobEvent>(options: EventsOptions = {}): AsyncGenerator<StreamEvent<E>, void, undefined> {
    return jobEvents<E>(this.streams, options);
  }

  /** A job's output (current attempt) from `offset`, live, ending with the job's output; resumes by offset. */
  logs(jobId: string, options: LogsOptions = {}): AsyncGenerator<LogChunkEvent, void, undefined> {
    return jobLogs(this.streams, jobId, options);
  }

  /** Attach a terminal to an interactive job; rejects with a ProblemError when the edge refuses (404, 409 ...). */
  async attach(jobId: string, options: { offset?: number } = {}): Promise<Attachment> {
    const Socket = this.options.WebSocket ?? (await defaultWebSocket());
    const native = !this.options.WebSocket && !isNode;
    const { query, headers } = await this.credentials(native ? "ticket" : this.streamAuth());
    const params = new URLSearchParams(query);
    if (options.offset !== undefined) params.set("offset", String(options.offset));
    const base = this.streams.realtimeUrl.replace(/^http/, "ws");
    const url = `${base}/v1/jobs/${encodeURIComponent(jobId)}/attach${params.size ? `?${params}` : ""}`;
    const socket = Object.keys(headers).length ? new Socket(url, { headers }) : new Socket(url);
    socket.binaryType = "arraybuffer";
    const attachment = new Attachment(socket);
    await opened(socket);
    return attachment;
  }

  private streamAuth(): "header" | "ticket" {
    return this.options.streamAuth ?? (isNode ? "header" : "ticket");
  }

  private async credentials(how: "header" | "ticket"):
      Promise<{ query: Record<string, string>; headers: Record<string, string> }> {
    if (how === "ticket") return { query: { ticket: (await this.streamTicket()).ticket }, headers: {} };
    return { query: {}, headers: { Authorization: `Bearer ${await resolveToken(this.options.token)}` } };
  }
}

/** The `ws` package's WebSocket in Node (it sends headers), else the global one (browsers). */
async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const found = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (found && !isNode) return found;
  try {
    const ws = (await import("ws")) as unknown as { WebSocket: WebSocketConstructor };
    return ws.WebSocket;
  } catch {
    if (found) return found;
    throw new Error("no WebSocket: install the `ws` package or pass `WebSocket` in the options");
  }
}
