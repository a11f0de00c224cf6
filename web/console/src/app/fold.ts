// A job's view moved forward by one of its events: the console's copy of the contracts' lifecycle fold
// (xrunner.contracts.lifecycle), limited to what the pages show. Events of other jobs are the caller's to route.

import type { JobEvent, JobView } from "@xrunner/sdk";

/** The view after `event`, or the same object when the event changes nothing. */
export function fold(view: JobView, event: JobEvent): JobView {
  const at = event.occurred_at;
  switch (event.type) {
    case "job.queued.v1":
      return view.state === "submitted" ? { ...view, state: "queued", queued_at: view.queued_at ?? at, updated_at: at } : view;
    case "job.rejected.v1":
      return view.state === "submitted" ? { ...view, state: "rejected", finished_at: at, updated_at: at } : view;
    case "job.dispatched.v1":
      return view.state === "queued" ? { ...view, state: "dispatched", attempt: event.attempt ?? view.attempt, updated_at: at } : view;
    case "job.started.v1":
      return { ...view, state: "running", started_at: at, updated_at: at };
    case "job.succeeded.v1":
      return finish(view, "succeeded", at, event.exit_code ?? 0);
    case "job.failed.v1":
      return event.final === false ? { ...view, state: "queued", updated_at: at } : finish(view, "failed", at, event.exit_code ?? null);
    case "job.timed_out.v1":
      return finish(view, "timed_out", at, null);
    case "job.cancel_requested.v1":
      return { ...view, cancel_requested: true, updated_at: at };
    case "job.cancelled.v1":
      return finish(view, "cancelled", at, null);
    case "job.expired.v1":
      return view.state === "queued" ? finish(view, "expired", at, null) : view;
    case "job.lost.v1":
    case "job.retry_scheduled.v1":
      return { ...view, state: "queued", updated_at: at };
    default:
      return view;
  }
}

function finish(view: JobView, state: JobView["state"], at: string, exitCode: number | null): JobView {
  return { ...view, state, exit_code: exitCode, finished_at: at, updated_at: at };
}

/** A new job's view from its `job.submitted.v1` event (what the list shows before the read model has it). */
export function submittedView(event: Extract<JobEvent, { type: "job.submitted.v1" }>): JobView {
  return {
    id: event.job_id, tenant: event.tenant, spec: event.spec, state: "submitted", attempt: 0,
    created_at: event.occurred_at, updated_at: event.occurred_at,
  } as JobView;
}

export const TERMINAL: ReadonlySet<JobView["state"]> = new Set(["succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"]);
