"""The job state machine: how a job's history folds into the view clients see.

Pure and shared, so the gateway's read model, the CLI's replay and tests all agree on what a history means.
Invariants: terminal states absorb; events of a superseded attempt (attempt < current) change nothing.
"""

from __future__ import annotations

from xrunner.contracts import events as ev
from xrunner.contracts.api import TERMINAL_STATES, JobView

# Events that belong to one attempt: ignored when that attempt has been superseded.
_ATTEMPT_SCOPED = (ev.JobStarted, ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobLost, ev.ArtifactStored)


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


def fold(view: JobView | None, event: ev.Event, seq: int) -> JobView | None:
    """Apply one event (at stream sequence `seq`) to a job's view; returns the new view."""
    if isinstance(event, ev.JobSubmitted):
        if view is not None:
            return view
        return JobView(
            id=event.job_id,
            tenant=event.tenant,
            state="submitted",
            attempt=0,
            spec=event.spec,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            version=seq,
        )
    if view is None or not isinstance(event, ev.JobEvent) or seq <= view.version:
        return view
    if is_terminal(view.state) or (isinstance(event, _ATTEMPT_SCOPED) and event.attempt < view.attempt):
        return view
    view.version = seq
    view.updated_at = event.occurred_at
    _apply(view, event)
    return view


def _apply(view: JobView, event: ev.JobEvent) -> None:  # noqa: C901 - one branch per event type reads best
    match event:
        case ev.JobQueued():
            view.state, view.pool, view.position, view.eta_s = "queued", event.pool, event.position, event.eta_s
            view.queued_at = view.queued_at or event.occurred_at
            view.reason = None
        case ev.JobRejected():
            view.state, view.reason, view.retry_after_s = "rejected", event.cause, event.retry_after_s
            view.finished_at = event.occurred_at
        case ev.JobDispatched():
            view.state, view.attempt, view.pool = "dispatched", event.attempt, event.pool
            view.position = view.eta_s = None
        case ev.JobStarted():
            view.state, view.worker_id, view.sandbox = "running", event.worker_id, event.sandbox
            view.started_at = event.occurred_at
        case ev.JobSucceeded():
            _finish(view, event, "succeeded", event.exit_code, None)
        case ev.JobFailed():
            if event.final:
                _finish(view, event, "failed", event.exit_code, event.reason or None)
            else:
                view.exit_code, view.reason = event.exit_code, event.reason or None
        case ev.JobTimedOut():
            _finish(view, event, "timed_out", None, f"timed out after {event.timeout_s:g}s")
        case ev.JobCancelRequested():
            view.cancel_requested = True
        case ev.JobCancelled():
            _finish(view, event, "cancelled", None, event.detail or "cancelled")
        case ev.JobExpired():
            _finish(view, event, "expired", None, f"waited {event.waited_s:g}s in the queue")
        case ev.JobLost():
            view.state, view.reason = "queued", "worker_lost"
        case ev.JobRetryScheduled():
            view.state, view.reason = "queued", "backoff"
        case _:
            pass


def _finish(view: JobView, event: ev.JobEvent, state: str, exit_code: int | None, reason: str | None) -> None:
    view.state = state  # type: ignore[assignment]
    view.exit_code = exit_code
    view.reason = reason
    view.finished_at = event.occurred_at


def replay(history: list[tuple[int, ev.Event]]) -> JobView | None:
    """Fold a whole history (sequence, event) in order."""
    view: JobView | None = None
    for seq, event in history:
        view = fold(view, event, seq)
    return view
