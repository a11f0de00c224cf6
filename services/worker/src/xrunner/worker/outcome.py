"""How an attempt ended, as one tagged union, and the one pure function that turns it into the attempt's last event."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from xrunner.contracts.events import JobCancelled, JobEvent, JobFailed, JobSucceeded, JobTimedOut
from xrunner.contracts.messages import RunJob
from xrunner.contracts.policy import should_retry


@dataclass(frozen=True, slots=True)
class Exited:
    """The job's process exited by itself with `code` (0 is success)."""

    code: int


@dataclass(frozen=True, slots=True)
class Signalled:
    """The job's process was killed by signal `signum` (the OOM killer's SIGKILL included)."""

    signum: int


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The job ran past its spec's `timeout_s` and was stopped."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A user's cancel request stopped the job; `before_start` when it arrived between dispatch and start."""

    before_start: bool = False


@dataclass(frozen=True, slots=True)
class SandboxFailed:
    """The sandbox could not start the job; `reason` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class HandedBack:
    """The worker stopped the job at its own shutdown: no event; the scheduler requeues the attempt once the
    worker's heartbeat is gone, without using the job's retry budget."""


@dataclass(frozen=True, slots=True)
class LeaseLapsed:
    """The worker's lease lapsed during the attempt and its reaper killed the job (or may have): no event; the
    scheduler declares the attempt lost and runs the job again, so whatever the process did is not reported."""


Outcome = Exited | Signalled | TimedOut | Cancelled | SandboxFailed | HandedBack | LeaseLapsed

KINDS: dict[type[JobEvent], str] = {
    JobSucceeded: "succeeded",
    JobFailed: "failed",
    JobTimedOut: "timed_out",
    JobCancelled: "cancelled",
}
"""Each outcome event's kind: the end of its dedupe id and its `xrunner_worker_attempts_total` label."""


def exit_outcome(code: int) -> Exited | Signalled:
    """A sandbox's exit status: -N for death by signal N, else the exit code."""
    return Signalled(-code) if code < 0 else Exited(code)


def outcome_event(
    outcome: Outcome, run: RunJob, *, duration_s: float, event_id: str, occurred_at: datetime
) -> JobEvent | None:
    """The event that ends attempt `run` this way, or None when the attempt is handed back or fenced off."""
    head = _Head(event_id=event_id, occurred_at=occurred_at, tenant=run.tenant, job_id=run.job_id, attempt=run.attempt)
    match outcome:
        case Exited(0):
            return JobSucceeded(**head, exit_code=0, duration_s=duration_s)
        case Exited(code):
            return _failed(head, run, code, f"exited with {code}", duration_s)
        case Signalled(signum):
            return _failed(head, run, 128 + signum, f"killed by signal {signal.Signals(signum).name}", duration_s)
        case SandboxFailed(reason):
            return _failed(head, run, None, reason, duration_s)
        case TimedOut():
            return JobTimedOut(**head, timeout_s=run.spec.timeout_s)
        case Cancelled(before_start):
            return JobCancelled(**head, detail="cancelled before it started" if before_start else
                                "cancelled while running")
        case HandedBack() | LeaseLapsed():
            return None


class _Head(TypedDict):
    """What every event of the attempt carries."""

    event_id: str
    occurred_at: datetime
    tenant: str
    job_id: str
    attempt: int


def _failed(head: _Head, run: RunJob, code: int | None, reason: str, duration_s: float) -> JobFailed:
    final = not should_retry(run.spec.retry, code, run.retries_used)
    return JobFailed(**head, exit_code=code, reason=reason, duration_s=duration_s, final=final)
