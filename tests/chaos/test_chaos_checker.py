"""The chaos checker on synthetic histories: each check fires on the defect it names and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from chaos.checker import Observed, Run, Submit, check, known_jobs, overlapping, parse_runs

from xrunner.contracts import events as ev
from xrunner.contracts.spec import JobSpec, ProcessWorkload

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPEC = JobSpec(workload=ProcessWorkload(argv=["true"]))


def job(job_id: str, *kinds: str, first_seq: int = 1, key: str | None = None) -> list[tuple[int, ev.Event]]:
    """A history of `job_id` from short names: submitted, queued, dispatched, started, succeeded, lost, failed."""
    common: dict[str, Any] = {"occurred_at": T0, "tenant": "t1", "job_id": job_id}
    attempt = 0
    history: list[tuple[int, ev.Event]] = []
    for i, kind in enumerate(kinds):
        attempt += kind == "dispatched"
        made: dict[str, ev.Event] = {
            "submitted": ev.JobSubmitted(event_id=f"e{i}", spec=SPEC, idempotency_key=key, **common),
            "queued": ev.JobQueued(event_id=f"e{i}", pool="default", **common),
            "dispatched": ev.JobDispatched(event_id=f"e{i}", pool="default", attempt=attempt, **common),
            "started": ev.JobStarted(event_id=f"e{i}", worker_id="w0", sandbox="none", attempt=attempt, **common),
            "succeeded": ev.JobSucceeded(event_id=f"e{i}", attempt=attempt, **common),
            "lost": ev.JobLost(event_id=f"e{i}", worker_id="w0", attempt=attempt, **common),
            "retry": ev.JobFailed(event_id=f"e{i}", attempt=attempt, final=False, **common),
        }
        history.append((first_seq + i, made[kind]))
    return history


DONE = ("submitted", "queued", "dispatched", "started", "succeeded")


def healthy(job_ids: list[str]) -> Observed:
    """A history in which every job ended once and every view agrees with the log."""
    log = {j: job(j, *DONE, first_seq=10 * n) for n, j in enumerate(job_ids, 1)}
    return Observed(
        submits=[Submit(f"k-{j}", "t1", 201, j, 0.0) for j in job_ids],
        log=log,
        api=dict.fromkeys(job_ids, "succeeded"),
        read_model={j: ("succeeded", log[j][-1][0]) for j in job_ids},
        runs=[Run(j, 1, "100", 1.0, 2.0, True) for j in job_ids],
        rebuilds={"gateway": None, "scheduler": None},
    )


def replace(observed: Observed, **changes: object) -> Observed:
    return Observed(**{**observed.__dict__, **changes})


def test_a_history_where_every_job_ended_once_passes_every_check() -> None:
    verdict = check(healthy(["a", "b", "c"]))
    assert verdict.ok, verdict.summary()
    assert verdict.jobs == 3


def test_an_accepted_job_without_a_terminal_event_is_lost_and_stuck() -> None:
    observed = healthy(["a", "b"])
    log = {**observed.log, "b": job("b", "submitted", "queued", first_seq=20)}
    verdict = check(replace(observed, log=log, api={"a": "succeeded", "b": "queued"},
                            read_model={**observed.read_model, "b": ("queued", 21)}))
    assert verdict.failed == {"lost": 1, "stuck": 1}
    assert "b" in verdict.examples["lost"][0]


def test_an_accepted_job_the_log_never_saw_is_lost() -> None:
    observed = healthy(["a"])
    submits = [*observed.submits, Submit("k-x", "t2", 202, "x", 0.0)]
    verdict = check(replace(observed, submits=submits, api={**observed.api, "x": None}))
    assert verdict.counts["lost"] == 1 and verdict.counts["stuck"] == 1 and verdict.counts["read_model_drift"] == 0


def test_an_unanswered_submit_is_judged_when_the_log_has_its_key() -> None:
    observed = healthy(["a"])
    log = {**observed.log, "u": job("u", "submitted", "queued", first_seq=50, key="k-u")}
    submits = [*observed.submits, Submit("k-u", "t1", None, None, 0.0), Submit("k-never", "t1", None, None, 0.0)]
    verdict = check(replace(observed, submits=submits, log=log, api={**observed.api, "u": "queued"},
                            read_model={**observed.read_model, "u": ("queued", 51)}))
    assert verdict.jobs == 2 and verdict.unanswered == 2
    assert verdict.failed == {"lost": 1, "stuck": 1}


def test_a_refused_submit_still_names_a_job_that_must_end() -> None:
    assert known_jobs([Submit("k", "t1", 429, "r", 0.0), Submit("k2", "t1", 500, None, 0.0)], {}) == {"r"}


def test_two_terminal_events_of_one_job_are_duplicates() -> None:
    observed = healthy(["a"])
    twice = job("a", "submitted", "queued", "dispatched", "started", "succeeded", "succeeded", first_seq=10)
    verdict = check(replace(observed, log={"a": twice}, read_model={"a": ("succeeded", 14)}))
    assert verdict.failed == {"duplicate_terminal": 1}


def test_a_failure_that_will_be_retried_is_not_an_end() -> None:
    observed = healthy(["a"])
    history = job("a", "submitted", "queued", "dispatched", "started", "retry", "queued", "dispatched", "started",
                  "succeeded", first_seq=10)
    verdict = check(replace(observed, log={"a": history}, read_model={"a": ("succeeded", 18)}))
    assert verdict.ok, verdict.summary()


def test_a_read_model_behind_the_log_drifts() -> None:
    observed = healthy(["a", "b"])
    verdict = check(replace(observed, read_model={**observed.read_model, "b": ("running", 23)}))
    assert verdict.failed == {"read_model_drift": 1}
    assert "running" in verdict.examples["read_model_drift"][0]


def test_a_rebuild_that_differs_is_reported_per_service() -> None:
    verdict = check(replace(healthy(["a"]), rebuilds={"gateway": None, "scheduler": "tenants: 3 live vs 3 rebuilt"}))
    assert verdict.failed == {"rebuild_drift": 1}
    assert verdict.examples["rebuild_drift"] == ["scheduler: tenants: 3 live vs 3 rebuilt"]


@pytest.mark.parametrize(
    ("second", "overlaps"),
    [
        (Run("a", 2, "200", 1.5, 3.0, True), True),  # the rerun started while the first still ran
        (Run("a", 1, "201", 1.9, 2.5, True), True),  # the same attempt delivered twice
        (Run("a", 2, "202", 2.1, 3.0, True), False),  # one after the other: a rerun, not an overlap
    ],
)
def test_executions_of_one_job_alive_at_once_overlap(second: Run, overlaps: bool) -> None:
    first = Run("a", 1, "100", 1.0, 2.0, False)
    other_job = Run("b", 1, "300", 1.0, 3.0, True)
    assert overlapping([first, second, other_job]) == ([(first, second)] if overlaps else [])
    verdict = check(replace(healthy(["a", "b"]), runs=[first, second, other_job]))
    assert verdict.counts["overlap"] == int(overlaps)


def test_runs_are_read_from_start_tick_and_end_lines_and_torn_lines_are_skipped() -> None:
    lines = ["start a 1 100 1.0", "tick a 1 100 1.5", "start a 2 200 1.2", "end a 1 100 2.0", "tick a 2 2", "garbage",
             "tick a 2 200 1.7"]
    runs = sorted(parse_runs(lines), key=lambda r: r.attempt)
    assert runs == [Run("a", 1, "100", 1.0, 2.0, True), Run("a", 2, "200", 1.2, 1.7, False)]


def test_a_job_whose_command_succeeds_but_ends_failed_was_failed_by_the_fault() -> None:
    observed = healthy(["a", "b"])
    verdict = check(replace(observed, api={"a": "succeeded", "b": "failed"}))
    assert verdict.failed == {"failed_by_fault": 1}
    assert verdict.outcomes == {"succeeded": 1, "failed": 1}
