"""How an attempt ended → the event that ends it: one table-driven case per kind of outcome, the retry policy's say
on `final`, and the exit status a sandbox reports read as an outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xrunner.contracts.events import JobCancelled, JobEvent, JobFailed, JobSucceeded, JobTimedOut
from xrunner.contracts.messages import RunJob
from xrunner.contracts.spec import JobSpec, ProcessWorkload, RetryPolicy
from xrunner.worker.outcome import (
    KINDS,
    Cancelled,
    Exited,
    HandedBack,
    LeaseLapsed,
    Outcome,
    SandboxFailed,
    Signalled,
    TimedOut,
    exit_outcome,
    outcome_event,
)

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
HEAD = {"event_id": "ev-1", "occurred_at": NOW, "tenant": "acme", "job_id": "job-1", "attempt": 2}
RETRY_3 = RetryPolicy(max_attempts=3, retry_on_exit_codes=[3, 137])


def run_of(retry: RetryPolicy = RetryPolicy(), retries_used: int = 0) -> RunJob:
    spec = JobSpec(workload=ProcessWorkload(argv=["true"]), timeout_s=90.0, retry=retry)
    return RunJob(tenant="acme", job_id="job-1", attempt=2, spec=spec, fence_seq=7, dispatched_at=NOW,
                  retries_used=retries_used)


@pytest.mark.parametrize(
    ("outcome", "run", "expected", "kind"),
    [
        (Exited(0), run_of(), JobSucceeded(**HEAD, exit_code=0, duration_s=1.5), "succeeded"),
        (Exited(1), run_of(), JobFailed(**HEAD, exit_code=1, reason="exited with 1", duration_s=1.5, final=True),
         "failed"),
        # A retryable exit code with budget left sends the job back to the queue ...
        (Exited(3), run_of(RETRY_3), JobFailed(**HEAD, exit_code=3, reason="exited with 3", duration_s=1.5,
                                               final=False), "failed"),
        # ... and is final once the budget is spent.
        (Exited(3), run_of(RETRY_3, retries_used=2), JobFailed(**HEAD, exit_code=3, reason="exited with 3",
                                                               duration_s=1.5, final=True), "failed"),
        # A signal reads as the shell's 128+N, so the retry policy can name it.
        (Signalled(9), run_of(RETRY_3), JobFailed(**HEAD, exit_code=137, reason="killed by signal SIGKILL",
                                                  duration_s=1.5, final=False), "failed"),
        (Signalled(15), run_of(), JobFailed(**HEAD, exit_code=143, reason="killed by signal SIGTERM", duration_s=1.5,
                                            final=True), "failed"),
        # A job the sandbox could not start has no exit code: never retried.
        (SandboxFailed("cannot start 'nope'"), run_of(RETRY_3),
         JobFailed(**HEAD, exit_code=None, reason="cannot start 'nope'", duration_s=1.5, final=True), "failed"),
        (TimedOut(), run_of(), JobTimedOut(**HEAD, timeout_s=90.0), "timed_out"),
        (Cancelled(), run_of(), JobCancelled(**HEAD, detail="cancelled while running"), "cancelled"),
        (Cancelled(before_start=True), run_of(), JobCancelled(**HEAD, detail="cancelled before it started"),
         "cancelled"),
    ],
)
def test_each_outcome_ends_the_attempt_with_its_event(outcome: Outcome, run: RunJob, expected: JobEvent,
                                                      kind: str) -> None:
    event = outcome_event(outcome, run, duration_s=1.5, event_id="ev-1", occurred_at=NOW)
    assert event == expected
    assert KINDS[type(event)] == kind


@pytest.mark.parametrize("outcome", [HandedBack(), LeaseLapsed()])
def test_a_handed_back_or_fenced_off_attempt_ends_with_no_event(outcome: Outcome) -> None:
    assert outcome_event(outcome, run_of(), duration_s=1.5, event_id="ev-1", occurred_at=NOW) is None


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, Exited(0)), (1, Exited(1)), (137, Exited(137)), (-9, Signalled(9)), (-15, Signalled(15))],
)
def test_a_sandbox_exit_status_reads_as_an_exit_or_a_signal(code: int, outcome: Outcome) -> None:
    assert exit_outcome(code) == outcome
