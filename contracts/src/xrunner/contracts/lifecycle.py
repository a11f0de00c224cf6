"""The job state machine: how a job's history folds into the view clients see.

Pure and shared, so the gateway's read model, the scheduler, the CLI's replay and tests all agree on what a history
means. Invariants: terminal states absorb; an attempt's events count only while that attempt is the job's live one
(dispatched or running): a superseded, lost or finished attempt changes nothing. The one exception is the
scheduler's `job.failed` that abandons the whole job, which ends it from any state that is not terminal.
"""

from __future__ import annotations

from xrunner.contracts import events as ev
from xrunner.contracts.api import TERMINAL_STATES, JobView

# Events that belong to one attempt: they apply only while that attempt is live.
_ATTEMPT_SCOPED = (ev.JobStarted, ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobLost, ev.ArtifactStored)
_LIVE = ("dispatched", "running")


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


def fold(view: JobView | None, event: ev.Event, seq: int) -> JobView | None:
    """Apply one event (at stream sequence `seq`) to a job's view and return it. The view passed in is updated in
    place (folding is on the hot path of every projection); copy it first to keep the old one."""
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
    if is_terminal(view.state) or (isinstance(event, _ATTEMPT_SCOPED) and not _live(view, event)
                                   and not _abandons(event)):
        return view
    if _apply(view, event):
        view.version = seq
        view.updated_at = event.occurred_at
    return view


def _abandons(event: ev.JobEvent) -> bool:
    """The scheduler gave the whole job up (an event of it could not be applied): it ends the job in any state."""
    return isinstance(event, ev.JobFailed) and event.abandoned and event.final


def _live(view: JobView, event: ev.JobEvent) -> bool:
    if event.attempt != view.attempt:
        return False
    return view.state == "dispatched" if isinstance(event, ev.JobStarted) else view.state in _LIVE


def _apply(view: JobView, event: ev.JobEvent) -> bool:  # noqa: C901 - one branch per event type reads best
    """Change `view` by `event`; False when the event changes nothing (it does not count as applied)."""
    match event:
        case ev.JobQueued() if view.state == "submitted":
            view.state, view.pool, view.position, view.eta_s = "queued", event.pool, event.position, event.eta_s
            view.queued_at = view.queued_at or event.occurred_at
            view.reason = None
        case ev.JobRejected() if view.state == "submitted":
            view.state, view.reason, view.retry_after_s = "rejected", event.cause, event.retry_after_s
            view.finished_at = event.occurred_at
        case ev.JobDispatched() if view.state == "queued" and event.attempt > view.attempt:
            view.state, view.attempt, view.pool = "dispatched", event.attempt, event.pool
            view.retries_used = event.retries_used
            view.position = view.eta_s = view.not_before = None
        case ev.JobStarted():
            view.state, view.worker_id, view.sandbox = "running", event.worker_id, event.sandbox
            view.started_at = event.occurred_at
        case ev.JobSucceeded():
            _finish(view, event, "succeeded", event.exit_code, None)
        case ev.JobFailed():
            if event.final:
                _finish(view, event, "failed", event.exit_code, event.reason or None)
            else:  # back to the queue, held until the scheduler sets the backoff
                view.state, view.exit_code, view.reason = "queued", event.exit_code, "backoff"
                view.retries_used += 1
                view.not_before = None
        case ev.JobTimedOut():
            _finish(view, event, "timed_out", None, f"timed out after {event.timeout_s:g}s")
        case ev.JobCancelRequested():
            view.cancel_requested = True
        case ev.JobCancelled() if event.attempt == view.attempt:
            _finish(view, event, "cancelled", None, event.detail or "cancelled")
        case ev.JobExpired() if view.state == "queued":
            _finish(view, event, "expired", None, f"waited {event.waited_s:g}s in the queue")
        case ev.JobLost():
            view.state, view.reason, view.not_before = "queued", "worker_lost", None
        case ev.JobRetryScheduled() if view.state == "queued":
            view.state, view.reason, view.not_before = "queued", "backoff", event.not_before
        case ev.ArtifactStored():
            pass
        case _:
            return False
    return True


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
