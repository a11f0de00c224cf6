// The REST resources: the gateway's jobs, stats, tenants and auth routes and the artifacts service's routes, over
// openapi-fetch with the generated paths; a non-2xx answer becomes a ProblemError.

import createClient, { type Client, type Middleware } from "openapi-fetch";

import { ProblemError } from "./errors.js";
import type { ArtifactsPaths, GatewayPaths } from "./types.js";
import type { components } from "./generated/openapi.js";
import type {
  ArtifactPreview,
  ArtifactView,
  BatchAccepted,
  ConfigureTenant,
  DryRun,
  Explain,
  HistoryEntry,
  JobAccepted,
  JobList,
  JobSpec,
  JobState,
  JobView,
  StatsView,
  StreamTicket,
  TenantLimits,
  Whoami,
} from "./types.js";
import { resolveToken, trimSlash, type TokenSource } from "./options.js";

/** Filters of `jobs.list()`; `label` entries are `key=value`, all must match. */
export interface JobQuery {
  state?: JobState[];
  label?: string[];
  created_after?: string;
  limit?: number;
  cursor?: string;
}

/** The request bodies as the OpenAPI types declare them (defaulted fields marked present; the server fills them). */
type WireSpec = components["schemas"]["JobSpec"];
type WireTenant = components["schemas"]["ConfigureTenant"];

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The answer's body, or its problem thrown. */
async function unwrap<T>(pending: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await pending;
  if (!response.ok || error !== undefined) throw ProblemError.from(response, error);
  return data as T;
}

function bearer(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await resolveToken(token)}`);
      return request;
    },
  };
}

export function gatewayClient(baseUrl: string, token: TokenSource, fetchImpl?: typeof fetch): Client<GatewayPaths> {
  const client = createClient<GatewayPaths>({ baseUrl: trimSlash(baseUrl), ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  client.use(bearer(token));
  return client;
}

export function artifactsClient(baseUrl: string, token: TokenSource, fetchImpl?: typeof fetch): Client<ArtifactsPaths> {
  const client = createClient<ArtifactsPaths>({ baseUrl: trimSlash(baseUrl), ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  client.use(bearer(token));
  return client;
}

/** A fresh idempotency key: a retried submit with the same key returns the same job instead of a second one. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

export class Jobs {
  constructor(private readonly api: Client<GatewayPaths>) {}

  /** Submit a job under `idempotencyKey` (one is generated if absent). 201 queued, 202 awaiting admission; a
   * refusal (429) is thrown as a ProblemError with `retryAfterS`. */
  submit(spec: JobSpec, options: { idempotencyKey?: string } = {}): Promise<JobAccepted> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    return unwrap(this.api.POST("/v1/jobs", { body: spec as WireSpec, params: { header: { "Idempotency-Key": key } } }));
  }

  /** Submit up to 1,000 jobs; each result says queued, awaiting, or refused with its problem. */
  batch(jobs: JobSpec[], options: { idempotencyKey?: string } = {}): Promise<BatchAccepted> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    return unwrap(this.api.POST("/v1/jobs/batch", { body: { jobs: jobs as WireSpec[] }, params: { header: { "Idempotency-Key": key } } }));
  }

  /** One page of the caller's jobs, newest first. */
  list(query: JobQuery = {}): Promise<JobList> {
    return unwrap(this.api.GET("/v1/jobs", { params: { query } }));
  }

  /** Pages of jobs, following `next_cursor` until the last. */
  async *pages(query: JobQuery = {}): AsyncGenerator<JobList, void, undefined> {
    let cursor = query.cursor;
    do {
      const page = await this.list({ ...query, ...(cursor ? { cursor } : {}) });
      yield page;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** Every job matching `query`, page after page. */
  async *all(query: JobQuery = {}): AsyncGenerator<JobView, void, undefined> {
    for await (const page of this.pages(query)) yield* page.jobs;
  }

  /** The job now, or as it was `asOf` an event: a stream sequence of its history, or an RFC 3339 time (the
   * fold of its events up to there, the same fold the read model uses). */
  get(jobId: string, options: { asOf?: number | string } = {}): Promise<JobView> {
    const query = options.asOf !== undefined ? { as_of: String(options.asOf) } : {};
    return unwrap(this.api.GET("/v1/jobs/{job_id}", { params: { path: { job_id: jobId }, query } }));
  }

  /** Ask the job to stop; a job that already ended is a 409 `job_finished`. */
  cancel(jobId: string, reason?: string): Promise<JobView> {
    return unwrap(this.api.POST("/v1/jobs/{job_id}/cancel", {
      params: { path: { job_id: jobId } },
      body: reason !== undefined ? { reason } : null,
    }));
  }

  rerun(jobId: string): Promise<JobAccepted> {
    return unwrap(this.api.POST("/v1/jobs/{job_id}/rerun", { params: { path: { job_id: jobId } } }));
  }

  /** Why the job is where it is: reason to wait, position, ETA. */
  explain(jobId: string): Promise<Explain> {
    return unwrap(this.api.GET("/v1/jobs/{job_id}/explain", { params: { path: { job_id: jobId } } }));
  }

  /** The job's events from the log, oldest first. */
  history(jobId: string): Promise<HistoryEntry[]> {
    return unwrap(this.api.GET("/v1/jobs/{job_id}/events", { params: { path: { job_id: jobId } } }));
  }

  /** What admission would decide for `spec` now. */
  dryRun(spec: JobSpec): Promise<DryRun> {
    return unwrap(this.api.POST("/v1/jobs/dry-run", { body: spec as WireSpec }));
  }

  /** The current attempt's output from byte `offset` (one read; `logs()` of the client follows it live). */
  async log(jobId: string, options: { offset?: number; limit?: number } = {}): Promise<JobLogRead> {
    const outcome = this.api.GET("/v1/jobs/{job_id}/logs", {
      params: { path: { job_id: jobId }, query: { ...options, format: "json" } }, parseAs: "json",
    });
    return unwrap(outcome as Promise<Outcome<unknown>>) as Promise<JobLogRead>;
  }
}

/** `GET /v1/jobs/{id}/logs?format=json`. */
export interface JobLogRead {
  job_id: string;
  offset: number;
  next_offset: number;
  text: string;
  complete: boolean;
}

export class Tenants {
  constructor(private readonly api: Client<GatewayPaths>) {}

  /** A tenant's configured limits, else the defaults (`configured: false`); admin scope. */
  get(tenant: string): Promise<TenantLimits> {
    return unwrap(this.api.GET("/v1/tenants/{tenant}", { params: { path: { tenant } } }));
  }

  /** Set a tenant's weight and limits; admin scope. */
  configure(tenant: string, body: ConfigureTenant): Promise<TenantLimits> {
    return unwrap(this.api.PUT("/v1/tenants/{tenant}", { params: { path: { tenant } }, body: body as WireTenant }));
  }
}

export class Artifacts {
  constructor(private readonly api: Client<ArtifactsPaths>) {}

  /** The job's artifacts (all attempts unless `attempt`), each with a signed download `url` valid ≤ 300 s. */
  list(jobId: string, options: { attempt?: number } = {}): Promise<ArtifactView[]> {
    return unwrap(this.api.GET("/v1/jobs/{job_id}/artifacts", { params: { path: { job_id: jobId }, query: options } }));
  }

  /** One artifact with a fresh signed URL; 410 `artifact_expired` once retention removed it. */
  get(artifactId: string): Promise<ArtifactView> {
    return unwrap(this.api.GET("/v1/artifacts/{artifact_id}", { params: { path: { artifact_id: artifactId } } }));
  }

  /** Its preview (text, archive entries, a thumbnail URL); 404 `preview_pending` until derived. */
  preview(artifactId: string): Promise<ArtifactPreview> {
    return unwrap(this.api.GET("/v1/artifacts/{artifact_id}/preview", {
      params: { path: { artifact_id: artifactId } },
    }));
  }
}

export async function whoami(api: Client<GatewayPaths>): Promise<Whoami> {
  return unwrap(api.GET("/v1/whoami"));
}

export async function stats(api: Client<GatewayPaths>): Promise<StatsView> {
  return unwrap(api.GET("/v1/stats"));
}

export async function streamTicket(api: Client<GatewayPaths>): Promise<StreamTicket> {
  return unwrap(api.POST("/v1/stream-tickets"));
}
