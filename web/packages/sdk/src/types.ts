// The types of the xrunner API as the SDK's users see them: named views over the generated OpenAPI and contracts
// types (src/generated, copied from @xrunner/api-types at build time), and the items the streams yield.

import type { components as GatewayComponents } from "./generated/openapi.js";
import type { components as ArtifactsComponents } from "./generated/artifacts.js";
import type {
  ContractsSchema, DockerWorkload as ContractDocker, JobSpec as ContractSpec, ProcessWorkload as ContractProcess,
  Resources as ContractResources,
} from "./generated/contracts.js";

export type { paths as GatewayPaths } from "./generated/openapi.js";
export type { paths as ArtifactsPaths } from "./generated/artifacts.js";

type Gw = GatewayComponents["schemas"];
type Art = ArtifactsComponents["schemas"];

export type JobView = Gw["JobView"];
/** A job to submit: fields with defaults may be left out (the contracts' schema; the OpenAPI types, generated
 * for responses, mark them present). */
export type JobSpec = ContractSpec;
export type JobAccepted = Gw["JobAccepted"];
export type JobList = Gw["JobList"];
export type BatchAccepted = Gw["BatchAccepted"];
export type BatchItem = Gw["BatchItem"];
export type HistoryEntry = Gw["HistoryEntry"];
export type Explain = Gw["Explain"];
export type DryRun = Gw["DryRun"];
export type StatsView = Gw["StatsView"];
export type PoolStats = Gw["PoolStats"];
export type TenantStats = Gw["TenantStats"];
export type TenantLimits = Gw["TenantLimits"];
/** `PUT /v1/tenants/{tenant}`: what is left out takes its default. */
export type ConfigureTenant = Partial<Gw["ConfigureTenant"]>;
export type Whoami = Gw["Whoami"];
export type StreamTicket = Gw["StreamTicket"];
export type Problem = Gw["Problem"];
export type ProcessWorkload = ContractProcess;
export type DockerWorkload = ContractDocker;
export type Resources = ContractResources;
export type JobState = JobView["state"];
export type ArtifactView = Art["ArtifactView"];
export type ArtifactPreview = Art["ArtifactPreview"];

/** Every event the tenant's job stream carries (job and artifact events), a union discriminated by `type`. */
export type JobEvent = Extract<ContractsSchema, { type: `job.${string}` | `artifact.${string}` }>;
/** The tags of `JobEvent`, e.g. `"job.succeeded.v1"`. */
export type JobEventType = JobEvent["type"];
/** The event of one tag: `EventOf<"job.failed.v1">`. */
export type EventOf<T extends JobEventType> = Extract<JobEvent, { type: T }>;

/** One item of `events()`: the event and its stream sequence (`id`, the point to resume after). */
export interface StreamEvent<E extends JobEvent = JobEvent> {
  id: number;
  event: E;
}

/** One item of `logs()`: output text of `stream`; `offset` is the byte offset just after it (the resume point). */
export interface LogChunkEvent {
  stream: "stdout" | "stderr" | "system";
  text: string;
  offset: number;
}

/** What a stream reports about its connection (for an integrity indicator). */
export type StreamStatus =
  | { state: "connecting"; resumeFrom: number | null }
  | { state: "open"; resumeFrom: number | null }
  | { state: "reconnecting"; attempt: number; delayMs: number; error: unknown }
  | { state: "resync"; resumeFrom: number | null }
  | { state: "closed" };
