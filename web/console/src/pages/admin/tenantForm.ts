// The tenant limits form without a DOM: the fields, their bounds (those of the contracts' ConfigureTenant), and
// the typed body or the field that is wrong.

import type { ConfigureTenant, TenantLimits } from "@xrunner/sdk";

export type Field = keyof ConfigureTenant;

export interface FieldSpec {
  field: Field;
  label: string;
  integer: boolean;
  /** Exclusive lower bound when `above`, else inclusive. */
  min: number;
  above: boolean;
  max: number;
  hint: string;
}

export const FIELDS: readonly FieldSpec[] = [
  { field: "weight", label: "Weight", integer: false, min: 0, above: true, max: 1_000_000, hint: "share under contention" },
  { field: "max_inflight", label: "Max in flight", integer: true, min: 0, above: false, max: 1_000_000, hint: "jobs dispatched or running" },
  { field: "max_queued", label: "Max queued", integer: true, min: 0, above: false, max: 10_000_000, hint: "jobs waiting" },
  { field: "submit_rate_per_s", label: "Submit rate /s", integer: false, min: 0, above: true, max: 1_000_000, hint: "admissions per second" },
  { field: "artifact_ttl_s", label: "Artifact TTL (s)", integer: false, min: 0, above: true, max: 10 * 365 * 86_400, hint: "artifacts kept this long" },
];

export type FormValues = Record<Field, string>;

export function valuesOf(limits: TenantLimits): FormValues {
  return {
    weight: String(limits.weight),
    max_inflight: String(limits.max_inflight),
    max_queued: String(limits.max_queued),
    submit_rate_per_s: String(limits.submit_rate_per_s),
    artifact_ttl_s: String(limits.artifact_ttl_s),
  };
}

export type Parsed = { ok: true; body: ConfigureTenant } | { ok: false; errors: Partial<Record<Field, string>> };

/** The request body, or a message for each field that the API would refuse. */
export function parse(values: FormValues): Parsed {
  const errors: Partial<Record<Field, string>> = {};
  const body: Partial<Record<Field, number>> = {};
  for (const spec of FIELDS) {
    const raw = values[spec.field].trim();
    const value = raw === "" ? Number.NaN : Number(raw);
    if (!Number.isFinite(value)) errors[spec.field] = "must be a number";
    else if (spec.integer && !Number.isInteger(value)) errors[spec.field] = "must be a whole number";
    else if (spec.above ? value <= spec.min : value < spec.min) errors[spec.field] = `must be ${spec.above ? "more than" : "at least"} ${spec.min}`;
    else if (value > spec.max) errors[spec.field] = `must be at most ${spec.max.toLocaleString("en")}`;
    else body[spec.field] = value;
  }
  if (Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, body: body as ConfigureTenant };
}

/** The form field a problem's `field` names (`weight`, `$.weight`, `body.weight` …), if it is one of ours. */
export function fieldOf(problemField: string | null | undefined): Field | null {
  if (!problemField) return null;
  const last = problemField.split(/[.[\]]/).filter(Boolean).at(-1) ?? "";
  return FIELDS.some((f) => f.field === last) ? (last as Field) : null;
}

export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
