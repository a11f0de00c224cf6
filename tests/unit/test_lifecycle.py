"""The job state machine: table-driven cases of `lifecycle.fold`/`replay` and hypothesis properties of any history."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xrunner.contracts import codec, lifecycle
from xrunner.contracts import events as ev
from xrunner.contracts.api import TERMINAL_STATES, JobView
from xrunner.contracts.spec import JobSpec, ProcessWorkload

TENANT, JOB = "acme", "01JPA3K7Z9Q4M2X8R5T6V0W1YB"
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
SPEC = JobSpec(workload=ProcessWorkload(argv=["python", "-c", "print(42)"]))
_ids = itertools.count(1)

History = list[tuple[int, ev.Event]]

# The fields each job event type requires beyond the common ones.
REQUIRED: dict[type[ev.JobEvent], dict[str, Any]] = {
    ev.JobSubmitted: {"spec": SPEC},
    ev.JobQueued: {"pool": "default"},
    ev.JobRejected: {"cause": "rate_limited", "scope": "tenant", "retry_after_s": 5.0},
    ev.JobDispatched: {"pool": "default"},
    ev.JobStarted: {"worker_id": "w1", "sandbox": "process"},
    ev.JobSucceeded: {},
    ev.JobFailed: {},
    ev.JobTimedOut: {"timeout_s": 60.0},
    ev.JobCancelRequested: {},
    ev.JobCancelled: {},
    ev.JobLost: {"worker_id": "w1"},
    ev.JobRetryScheduled: {"not_before": T0 + timedelta(hours=1)},
    ev.JobExpired: {"waited_s": 30.0},
    ev.JobAttached: {"subject": f"xr.stdin.{JOB}"},
    ev.ArtifactStored: {
        "artifact_id": "a1",
        "name": "out/result.txt",
        "key": f"{TENANT}/{JOB}/1/out/result.txt",
        "size": 3,
        "sha256": "0" * 64,
        "content_type": "text/plain",
    },
    ev.ArtifactExpired: {"artifact_id": "a1"},
    ev.ArtifactPreviewed: {"artifact_id": "a1", "kind": "text", "text": "abc", "line_count": 1},
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(event_type: type[ev.JobEvent], t: float = 0, attempt: int = 0, **fields: Any) -> ev.JobEvent:
    """A job event of the one job under test, at `t` seconds after T0."""
    values = {**REQUIRED[event_type], **fields}
    common = {"event_id": f"e{next(_ids)}", "occurred_at": at(t), "tenant": TENANT, "job_id": JOB}
    return event_type(**common, attempt=attempt, **values)


def numbered(*events: ev.Event, start: int = 1) -> History:
    """Events at consecutive stream sequences from `start`."""
    return list(enumerate(events, start=start))


def snapshot(view: JobView | None) -> Any:
    """A deep, comparable copy of a view (fold updates views in place)."""
    return None if view is None else msgspec.json.decode(codec.encode(view))


def through_storage(view: JobView | None) -> JobView | None:
    """The view as a projector stores and reloads it between batches."""
    return None if view is None else codec.decode(codec.encode(view), JobView)


SUBMITTED = make(ev.JobSubmitted, 0)
QUEUED = make(ev.JobQueued, 1, pool="gpu", position=3, eta_s=12.5)
DISPATCHED_1 = make(ev.JobDispatched, 2, attempt=1, pool="gpu")
STARTED_1 = make(ev.JobStarted, 3, attempt=1, worker_id="w7", sandbox="docker")
SUCCEEDED_1 = make(ev.JobSucceeded, 10, attempt=1, exit_code=0, duration_s=7.0)
RUNNING = [SUBMITTED, QUEUED, DISPATCHED_1, STARTED_1]
LOST_1 = make(ev.JobLost, 5, attempt=1, worker_id="w7", detail="no heartbeat for 15s")
DISPATCHED_2 = make(ev.JobDispatched, 6, attempt=2, pool="gpu")
# Attempt 1 was lost and attempt 2 dispatched: attempt 1 is superseded.
REDISPATCHED = [*RUNNING, LOST_1, DISPATCHED_2]


# --- table-driven cases ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "state"),
    [(1, "submitted"), (2, "queued"), (3, "dispatched"), (4, "running"), (5, "succeeded")],
)
def test_each_step_of_the_happy_path_moves_the_job_to_its_state(length: int, state: str) -> None:
    view = lifecycle.replay(numbered(*[*RUNNING, SUCCEEDED_1][:length]))
    assert view is not None
    assert (view.state, view.version) == (state, length)


def test_a_job_that_succeeds_records_its_timestamps_worker_and_exit_code() -> None:
    view = lifecycle.replay(numbered(*RUNNING, make(ev.JobSucceeded, 10, attempt=1, exit_code=0)))
    assert view is not None
    assert (view.id, view.tenant, view.spec, view.state, view.attempt) == (JOB, TENANT, SPEC, "succeeded", 1)
    assert (view.created_at, view.queued_at, view.started_at, view.finished_at) == (at(0), at(1), at(3), at(10))
    assert view.updated_at == at(10)
    assert (view.exit_code, view.reason, view.worker_id, view.sandbox, view.pool) == (0, None, "w7", "docker", "gpu")
    assert (view.position, view.eta_s, view.cancel_requested) == (None, None, False)


def test_a_queued_job_shows_its_pool_position_and_eta() -> None:
    view = lifecycle.replay(numbered(SUBMITTED, QUEUED))
    assert view is not None
    assert (view.pool, view.position, view.eta_s, view.queued_at, view.attempt) == ("gpu", 3, 12.5, at(1), 0)


@pytest.mark.parametrize(
    ("last", "state", "exit_code", "reason"),
    [
        (make(ev.JobFailed, 9, attempt=1, exit_code=3, reason="boom"), "failed", 3, "boom"),
        (make(ev.JobFailed, 9, attempt=1, exit_code=None, reason="sandbox error"), "failed", None, "sandbox error"),
        (make(ev.JobFailed, 9, attempt=1, exit_code=137), "failed", 137, None),
        (make(ev.JobTimedOut, 9, attempt=1, timeout_s=60.0), "timed_out", None, "timed out after 60s"),
        (make(ev.JobCancelled, 9, attempt=1, detail="cancelled while running"), "cancelled", None,
         "cancelled while running"),
        (make(ev.JobCancelled, 9, attempt=1), "cancelled", None, "cancelled"),
    ],
)
def test_a_running_job_ends_with_the_state_exit_code_and_reason_of_its_last_event(
    last: ev.JobEvent, state: str, exit_code: int | None, reason: str | None
) -> None:
    view = lifecycle.replay(numbered(*RUNNING, last))
    assert view is not None
    assert (view.state, view.exit_code, view.reason, view.finished_at) == (state, exit_code, reason, at(9))


def test_a_non_final_failure_sends_the_job_back_to_the_queue_and_counts_a_retry() -> None:
    failed = make(ev.JobFailed, 9, attempt=1, exit_code=75, reason="temporary", final=False)
    view = lifecycle.replay(numbered(*RUNNING, failed))
    assert view is not None
    assert (view.state, view.exit_code, view.reason, view.finished_at) == ("queued", 75, "backoff", None)
    assert (view.retries_used, view.not_before) == (1, None)


def test_a_scheduled_retry_holds_the_job_until_not_before_and_the_next_dispatch_clears_it() -> None:
    failed = make(ev.JobFailed, 9, attempt=1, exit_code=75, final=False)
    retry = make(ev.JobRetryScheduled, 10, attempt=1, not_before=at(40), reason="exit code 75 is retryable")
    view = lifecycle.replay(numbered(*RUNNING, failed, retry))
    assert view is not None
    assert (view.state, view.reason, view.not_before, view.retries_used) == ("queued", "backoff", at(40), 1)
    view = lifecycle.fold(view, make(ev.JobDispatched, 41, attempt=2, pool="gpu", retries_used=1), 7)
    assert view is not None
    assert (view.state, view.attempt, view.not_before, view.retries_used) == ("dispatched", 2, None, 1)


def test_a_rejected_job_is_finished_with_the_cause_and_retry_after() -> None:
    rejected = make(ev.JobRejected, 1, cause="tenant_queue_full", scope="tenant", retry_after_s=30.0)
    view = lifecycle.replay(numbered(SUBMITTED, rejected))
    assert view is not None
    assert (view.state, view.reason, view.retry_after_s, view.finished_at) == (
        "rejected", "tenant_queue_full", 30.0, at(1)
    )


def test_a_queued_job_that_waits_too_long_expires() -> None:
    view = lifecycle.replay(numbered(SUBMITTED, QUEUED, make(ev.JobExpired, 40, waited_s=39.0)))
    assert view is not None
    assert (view.state, view.reason, view.finished_at) == ("expired", "waited 39s in the queue", at(40))


@pytest.mark.parametrize(("length", "state"), [(1, "submitted"), (2, "queued"), (3, "dispatched"), (4, "running")])
def test_a_cancel_request_sets_the_flag_without_changing_the_state(length: int, state: str) -> None:
    history = numbered(*RUNNING[:length])
    request = make(ev.JobCancelRequested, 8, requested_by="alice", reason="wrong input")
    view = lifecycle.replay([*history, (length + 1, request)])
    assert view is not None
    assert (view.state, view.cancel_requested, view.updated_at, view.version) == (state, True, at(8), length + 1)


def test_a_lost_worker_puts_the_job_back_in_the_queue_with_reason_worker_lost() -> None:
    view = lifecycle.replay(numbered(*RUNNING, LOST_1))
    assert view is not None
    assert (view.state, view.reason, view.attempt, view.retries_used) == ("queued", "worker_lost", 1, 0)


def test_an_expiry_ends_only_a_job_that_is_still_queued() -> None:
    expired = make(ev.JobExpired, 9, waited_s=8.0)
    view = lifecycle.replay(numbered(*RUNNING, expired))
    assert view is not None
    assert (view.state, view.finished_at) == ("running", None)


def test_a_cancellation_of_a_superseded_attempt_does_not_cancel_the_live_one() -> None:
    view = lifecycle.replay(numbered(*REDISPATCHED, make(ev.JobCancelled, 8, attempt=1)))
    assert view is not None
    assert (view.state, view.attempt, view.finished_at) == ("dispatched", 2, None)


def test_a_never_dispatched_job_can_be_cancelled() -> None:
    view = lifecycle.replay(numbered(SUBMITTED, QUEUED, make(ev.JobCancelled, 5, detail="cancelled before it started")))
    assert view is not None
    assert (view.state, view.reason, view.finished_at) == ("cancelled", "cancelled before it started", at(5))


@pytest.mark.parametrize(
    "before",
    [[SUBMITTED], [SUBMITTED, QUEUED], RUNNING[:3], RUNNING, [*RUNNING, LOST_1], REDISPATCHED],
    ids=["submitted", "queued", "dispatched", "running", "lost", "redispatched"],
)
def test_an_abandoning_failure_ends_the_job_from_any_state_that_is_not_terminal(before: list[ev.Event]) -> None:
    """The scheduler abandons a job whose event a projection could not apply, whatever attempt is live."""
    abandoned = make(ev.JobFailed, 9, attempt=0, reason="could not be applied", abandoned=True)
    view = lifecycle.replay(numbered(*before, abandoned))
    assert view is not None
    assert (view.state, view.reason, view.finished_at) == ("failed", "could not be applied", at(9))


def test_an_ordinary_failure_of_no_live_attempt_still_changes_nothing() -> None:
    view = lifecycle.replay(numbered(SUBMITTED, QUEUED, make(ev.JobFailed, 9, attempt=0, reason="stale")))
    assert view is not None
    assert (view.state, view.reason) == ("queued", None)


def test_a_lost_job_is_dispatched_again_as_the_next_attempt() -> None:
    started_2 = make(ev.JobStarted, 7, attempt=2, worker_id="w8", sandbox="process")
    view = lifecycle.replay(numbered(*REDISPATCHED, started_2))
    assert view is not None
    assert (view.state, view.attempt, view.worker_id, view.started_at) == ("running", 2, "w8", at(7))


# Events of attempt 1, folded after attempt 2 was dispatched (REDISPATCHED).
ATTEMPT_1_EVENTS = {
    "started": make(ev.JobStarted, 8, attempt=1, worker_id="w7", sandbox="docker"),
    "succeeded": make(ev.JobSucceeded, 8, attempt=1, exit_code=0),
    "failed": make(ev.JobFailed, 8, attempt=1, exit_code=1, reason="late failure"),
    "failed_not_final": make(ev.JobFailed, 8, attempt=1, exit_code=1, final=False),
    "timed_out": make(ev.JobTimedOut, 8, attempt=1, timeout_s=60.0),
    "lost": make(ev.JobLost, 8, attempt=1, worker_id="w7"),
    "artifact_stored": make(ev.ArtifactStored, 8, attempt=1),
    "dispatched": make(ev.JobDispatched, 8, attempt=1, pool="cpu"),
}


# Histories after which attempt 1 is no longer the live attempt.
ATTEMPT_1_OVER = {"superseded": REDISPATCHED, "lost": [*RUNNING, LOST_1]}


@pytest.mark.parametrize("situation", ATTEMPT_1_OVER)
@pytest.mark.parametrize(
    "stale",
    [pytest.param(e, id=k) for k, e in ATTEMPT_1_EVENTS.items()],
)
def test_a_superseded_attempts_events_change_nothing(situation: str, stale: ev.JobEvent) -> None:
    history = numbered(*ATTEMPT_1_OVER[situation])
    view = lifecycle.replay(history)
    before = snapshot(view)
    assert snapshot(lifecycle.fold(view, stale, len(history) + 1)) == before


def test_a_second_start_of_the_running_attempt_changes_nothing() -> None:
    history = numbered(*RUNNING)
    view = lifecycle.replay(history)
    before = snapshot(view)
    again = make(ev.JobStarted, 4, attempt=1, worker_id="w9", sandbox="process")
    assert snapshot(lifecycle.fold(view, again, len(history) + 1)) == before


LIVE_ATTEMPT_EVENTS = {k: e for k, e in ATTEMPT_1_EVENTS.items() if k != "dispatched"}  # a repeat dispatch is a no-op


@pytest.mark.parametrize("event", LIVE_ATTEMPT_EVENTS.values(), ids=LIVE_ATTEMPT_EVENTS.keys())
def test_the_same_event_of_the_current_attempt_does_change_the_view(event: ev.JobEvent) -> None:
    current = msgspec.structs.replace(event, attempt=2)
    history = numbered(*REDISPATCHED)
    view = lifecycle.replay(history)
    before = snapshot(view)
    assert snapshot(lifecycle.fold(view, current, len(history) + 1)) != before


def test_a_stale_dispatch_cannot_let_the_superseded_attempt_finish_the_job() -> None:
    stale = [ATTEMPT_1_EVENTS["dispatched"], make(ev.JobSucceeded, 9, attempt=1)]
    view = lifecycle.replay(numbered(*REDISPATCHED, *stale))
    assert view is not None
    assert (view.attempt, view.state) == (2, "dispatched")


TERMINAL_HISTORIES = {
    "succeeded": [*RUNNING, SUCCEEDED_1],
    "failed": [*RUNNING, make(ev.JobFailed, 9, attempt=1, exit_code=2, reason="boom")],
    "timed_out": [*RUNNING, make(ev.JobTimedOut, 9, attempt=1, timeout_s=60.0)],
    "cancelled": [*RUNNING, make(ev.JobCancelled, 9, attempt=1)],
    "expired": [SUBMITTED, QUEUED, make(ev.JobExpired, 9, waited_s=8.0)],
    "rejected": [SUBMITTED, make(ev.JobRejected, 1)],
}
LATER_EVENTS = [
    make(ev.JobQueued, 20, attempt=1),
    make(ev.JobQueued, 20, attempt=2),
    make(ev.JobRejected, 20),
    make(ev.JobDispatched, 20, attempt=2),
    make(ev.JobStarted, 20, attempt=1),
    make(ev.JobStarted, 20, attempt=2),
    make(ev.JobSucceeded, 20, attempt=1),
    make(ev.JobFailed, 20, attempt=1, exit_code=9),
    make(ev.JobFailed, 20, attempt=1, exit_code=9, final=False),
    make(ev.JobTimedOut, 20, attempt=1),
    make(ev.JobCancelRequested, 20),
    make(ev.JobCancelled, 20, attempt=1),
    make(ev.JobLost, 20, attempt=1),
    make(ev.JobRetryScheduled, 20, attempt=1),
    make(ev.JobExpired, 20),
    make(ev.JobAttached, 20, attempt=1),
    make(ev.ArtifactStored, 20, attempt=1),
    make(ev.ArtifactExpired, 20, attempt=1),
    make(ev.ArtifactPreviewed, 20, attempt=1),
    make(ev.JobSubmitted, 20),
]


def test_the_later_events_table_covers_every_job_event_type() -> None:
    job_event_types = {t for t in ev.ALL_EVENT_TYPES if issubclass(t, ev.JobEvent)}
    assert {type(e) for e in LATER_EVENTS} == set(REQUIRED) == job_event_types


@pytest.mark.parametrize("state", sorted(TERMINAL_HISTORIES))
def test_a_terminal_state_absorbs_every_later_event(state: str) -> None:
    history = numbered(*TERMINAL_HISTORIES[state])
    view = lifecycle.replay(history)
    assert view is not None and view.state == state and lifecycle.is_terminal(state)
    before = snapshot(view)
    for seq, later in enumerate(LATER_EVENTS, start=len(history) + 1):
        view = lifecycle.fold(view, later, seq)
        assert snapshot(view) == before, ev.tag_of(type(later))


def test_the_terminal_table_covers_every_terminal_state() -> None:
    assert set(TERMINAL_HISTORIES) == TERMINAL_STATES


@pytest.mark.parametrize("seq", [1, 3, 4])
def test_a_redelivered_event_at_or_below_the_version_is_ignored(seq: int) -> None:
    view = lifecycle.replay(numbered(*RUNNING))
    before = snapshot(view)
    assert snapshot(lifecycle.fold(view, make(ev.JobFailed, 30, attempt=1, exit_code=1), seq)) == before


def test_a_redelivered_event_in_the_middle_of_a_history_is_ignored() -> None:
    cancel = make(ev.JobCancelRequested, 4)
    plain = lifecycle.replay(numbered(*RUNNING))
    redelivered = lifecycle.replay([(1, SUBMITTED), (2, QUEUED), (2, cancel), (3, DISPATCHED_1), (4, STARTED_1)])
    assert plain is not None and redelivered == plain and not redelivered.cancel_requested


def test_a_second_submission_does_not_reset_the_job() -> None:
    again = msgspec.structs.replace(SUBMITTED, event_id="other", occurred_at=at(50))
    view = lifecycle.replay(numbered(*RUNNING, again))
    assert view is not None
    assert (view.state, view.created_at, view.version) == ("running", at(0), 4)


def test_events_before_the_submission_are_ignored() -> None:
    assert lifecycle.replay(numbered(QUEUED, DISPATCHED_1)) is None
    view = lifecycle.replay([(1, QUEUED), (2, SUBMITTED)])
    assert view is not None and (view.state, view.version) == ("submitted", 2)


def test_an_event_that_is_not_a_job_event_is_ignored() -> None:
    view = lifecycle.replay(numbered(SUBMITTED))
    before = snapshot(view)
    worker = ev.WorkerStopped(event_id="w", occurred_at=at(5), worker_id="w1")
    assert snapshot(lifecycle.fold(view, worker, 2)) == before


def test_an_empty_history_has_no_view() -> None:
    assert lifecycle.replay([]) is None


# --- properties -----------------------------------------------------------------------------------------------------

Builder = Callable[[int, float], st.SearchStrategy[ev.JobEvent]]
WORKERS = st.sampled_from(["w1", "w2"])
POOLS = st.sampled_from(["default", "gpu"])
SECONDS = st.integers(1, 3600).map(float)


def _job(event_type: type[ev.JobEvent], **fields: st.SearchStrategy[Any]) -> Builder:
    return lambda attempt, t: st.fixed_dictionaries(fields).map(
        lambda values: make(event_type, t, attempt=attempt, **values)
    )


BUILDERS: dict[type[ev.JobEvent], Builder] = {
    ev.JobSubmitted: _job(ev.JobSubmitted),
    ev.JobQueued: _job(ev.JobQueued, pool=POOLS, position=st.integers(0, 9), eta_s=st.none() | SECONDS),
    ev.JobRejected: _job(
        ev.JobRejected,
        cause=st.sampled_from(["tenant_queue_full", "global_queue_full", "rate_limited", "invalid"]),
        retry_after_s=SECONDS,
    ),
    ev.JobDispatched: _job(ev.JobDispatched, pool=POOLS),
    ev.JobStarted: _job(ev.JobStarted, worker_id=WORKERS, sandbox=st.sampled_from(["process", "docker"])),
    ev.JobSucceeded: _job(ev.JobSucceeded, duration_s=SECONDS),
    ev.JobFailed: _job(
        ev.JobFailed,
        exit_code=st.none() | st.integers(1, 255),
        reason=st.sampled_from(["", "boom"]),
        final=st.booleans(),
    ),
    ev.JobTimedOut: _job(ev.JobTimedOut, timeout_s=SECONDS),
    ev.JobCancelRequested: _job(ev.JobCancelRequested, requested_by=st.sampled_from(["", "alice"])),
    ev.JobCancelled: _job(ev.JobCancelled, detail=st.sampled_from(["", "cancelled while running"])),
    ev.JobLost: _job(ev.JobLost, worker_id=WORKERS),
    ev.JobRetryScheduled: _job(ev.JobRetryScheduled),
    ev.JobExpired: _job(ev.JobExpired, waited_s=SECONDS),
    ev.JobAttached: _job(ev.JobAttached),
    ev.ArtifactStored: _job(ev.ArtifactStored),
    ev.ArtifactExpired: _job(ev.ArtifactExpired),
    ev.ArtifactPreviewed: _job(ev.ArtifactPreviewed),
}
# Frequent kinds first: hypothesis shrinks towards the start of a sampled_from.
# Kinds that keep a job alive come three times so that histories get long before they end.
KIND_ORDER: list[type[ev.JobEvent]] = [
    *[ev.JobQueued, ev.JobDispatched, ev.JobStarted, ev.JobLost, ev.JobRetryScheduled, ev.JobFailed] * 3,
    *[ev.JobCancelRequested, ev.ArtifactStored, ev.JobAttached] * 3,
    ev.JobSucceeded, ev.JobCancelled, ev.JobTimedOut, ev.JobExpired, ev.JobRejected, ev.ArtifactExpired,
    ev.ArtifactPreviewed, ev.JobSubmitted,
]
KINDS = st.sampled_from(KIND_ORDER)
# The events that belong to one attempt, as the lifecycle documents them (a dispatch applies only to a queued job).
ATTEMPT_SCOPED = [ev.JobStarted, ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobLost, ev.ArtifactStored]


@st.composite
def histories(draw: st.DrawFn, max_events: int = 20) -> History:
    """One job's history as a consumer sees it: usually a submission first, then events of the current attempt
    (sometimes of an older one), increasing stream sequences with gaps, and now and then a redelivery."""
    history: History = []
    seq, t, attempt = 0, 0.0, 0
    if draw(st.integers(0, 9)) > 0:
        seq = draw(st.integers(1, 5))
        history.append((seq, make(ev.JobSubmitted, t)))
    for _ in range(draw(st.integers(0, max_events))):
        if history and draw(st.integers(0, 9)) == 0:
            history.append(draw(st.sampled_from(history)))
            continue
        kind = draw(KINDS)
        if kind is ev.JobDispatched:
            attempt += 1
        event_attempt = draw(st.sampled_from([attempt, attempt, attempt, *range(attempt)]))
        seq += draw(st.integers(1, 3))
        t += draw(st.integers(0, 5))
        history.append((seq, draw(BUILDERS[kind](event_attempt, t))))
    return history


def test_the_history_strategy_can_build_every_job_event_type() -> None:
    assert set(BUILDERS) == set(REQUIRED) == set(KIND_ORDER)


@settings(max_examples=300)
@given(histories())
def test_replaying_a_history_twice_in_a_row_equals_replaying_it_once(history: History) -> None:
    assert lifecycle.replay(history + history) == lifecycle.replay(history)


@settings(max_examples=300)
@given(histories())
def test_replay_is_deterministic(history: History) -> None:
    assert snapshot(lifecycle.replay(history)) == snapshot(lifecycle.replay(list(history)))


@settings(max_examples=300)
@given(st.data())
def test_folding_in_stored_batches_equals_replaying_the_whole_history(data: st.DataObject) -> None:
    history = data.draw(histories())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(history)), max_size=4)))
    view: JobView | None = None
    for start, end in itertools.pairwise([0, *cuts, len(history)]):
        view = through_storage(view)
        for seq, event in history[start:end]:
            view = lifecycle.fold(view, event, seq)
    assert snapshot(view) == snapshot(lifecycle.replay(history))


@settings(max_examples=300)
@given(histories())
def test_no_event_sequence_moves_a_job_out_of_a_terminal_state(history: History) -> None:
    view: JobView | None = None
    final: Any = None
    for seq, event in history:
        view = lifecycle.fold(view, event, seq)
        if final is not None:
            assert snapshot(view) == final, f"{ev.tag_of(type(event))} at {seq} changed a finished job"
        elif view is not None and lifecycle.is_terminal(view.state):
            final = snapshot(view)


@settings(max_examples=200)
@given(st.sampled_from(sorted(TERMINAL_HISTORIES)), histories())
def test_a_finished_job_absorbs_any_continuation(state: str, continuation: History) -> None:
    finished = numbered(*TERMINAL_HISTORIES[state])
    later = [(len(finished) + seq, event) for seq, event in continuation]
    view = lifecycle.replay(finished + later)
    assert view is not None
    assert snapshot(view) == snapshot(lifecycle.replay(finished))


@settings(max_examples=300)
@given(histories(), st.data())
def test_an_attempts_event_changes_nothing_unless_that_attempt_is_live(
    continuation: History, data: st.DataObject
) -> None:
    dispatched = numbered(SUBMITTED, QUEUED, DISPATCHED_1)
    view = lifecycle.replay(dispatched + [(len(dispatched) + seq, event) for seq, event in continuation])
    assert view is not None
    attempt = data.draw(st.integers(0, view.attempt + 1))
    assume(not (view.state in ("dispatched", "running") and attempt == view.attempt))
    event = data.draw(BUILDERS[data.draw(st.sampled_from(ATTEMPT_SCOPED))](attempt, 99_999.0))
    before = snapshot(view)
    assert snapshot(lifecycle.fold(view, event, view.version + 1)) == before
