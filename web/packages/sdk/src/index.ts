// @xrunner/sdk: the public surface. See README.md for the API at a glance.

export { Xrunner } from "./client.js";
export { ProblemError } from "./errors.js";
export { Attachment, CLOSE, type AttachClose, type AttachEnd } from "./attach.js";
export { Jobs, Tenants, Artifacts, newIdempotencyKey, type JobQuery, type JobLogRead } from "./rest.js";
export type { EventsOptions, LogsOptions } from "./streams.js";
export type { TokenSource, WebSocketConstructor, XrunnerOptions } from "./options.js";
export type * from "./types.js";
