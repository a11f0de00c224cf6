// Hand-written entry point of @xrunner/api-types; openapi.ts and contracts.ts next to it are generated
// (run web/scripts/generate.sh, never edit them by hand).

/** The gateway's HTTP API, from its OpenAPI document: `paths`, `operations` and `components`. */
export type * from "./openapi.js";
/** The contracts (events, job spec, API bodies, worker messages), from xrunner.contracts.codec.json_schema(). */
export type * from "./contracts.js";

import type { components } from "./openapi.js";

/** The OpenAPI document's schema objects by name, e.g. `ApiSchemas["JobView"]`. */
export type ApiSchemas = components["schemas"];

/** The artifacts service's HTTP API, from its own OpenAPI document (artifacts.ts, generated). */
export type { paths as ArtifactsPaths, components as ArtifactsComponents } from "./artifacts.js";
