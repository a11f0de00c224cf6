"""The scheduler's decisions: one table-driven case per intent kind (what reconcile decides, with which event and
why), a round decides each job once and dispatches only when no job changed, the same inputs give the same
intents, and a replayed state decides like the live one."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulate import Sim, churn, heartbeat, pool, spec

from xrunner.contracts import events as ev
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.contracts.spec import RetryPolicy
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler import reconcile as rc
from xrunner.scheduler.reconcile import Intent, Round
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import Key

RULES = SchedulerSettings()


def worker(sim: Sim, running: Sequence[Key] = ()) -> WorkerHeartbeat:
    """A live worker of the default pool, heartbeating now, listing `running`."""
    return msgspec.structs.replace(heartbeat("w1"), running=[k[1] for k in running], at=sim.now)


def ids() -> Callable[[], str]:
    """A fresh id factory: "0", "1", ..."""
    return map(str, itertools.count()).__next__


def started(sim: Sim, key: Key) -> Key:
    sim.start(sim.dispatch(p for p in sim.plan({"default": pool()}).picks if p.key == key))
    assert sim.state.jobs[key].state == "running"
    return key


@dataclass
class Case:
    """Set up a sim, name the job, the round and the workers; expect one intent of `kind` for that job."""

    setup: Callable[[Sim], tuple[Key, Round, list[WorkerHeartbeat]]]
    kind: type[Intent]
    event: type[ev.JobEvent] | None
    why: str


def _admit(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submitted("acme")
    return key, Round(dirty=[key]), []


def _reject(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    sim.configure("acme", max_queued=1)
    sim.submit("acme")
    key = sim.submitted("acme")
    return key, Round(dirty=[key]), []


def _cancel(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submit("acme")
    sim.append(ev.JobCancelRequested(event_id="c", occurred_at=sim.now, tenant="acme", job_id=key[1], attempt=0))
    sim.project()
    return key, Round(dirty=[key]), []


def _retry(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submit("acme", job=spec(retry=RetryPolicy(max_attempts=3, retry_on_exit_codes=[1], backoff_s=8.0)))
    started(sim, key)
    sim.fail(key, exit_code=1, final=False)
    return key, Round(dirty=[key]), []


def _lose(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = started(sim, sim.submit("acme"))
    return key, Round(sweep=True, settled=True), []


def _lose_unlisted(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = started(sim, sim.submit("acme"))
    sim.tick(rc.RUNNING_LIST_GRACE_S + 1)
    return key, Round(sweep=True, settled=True), [worker(sim, running=[])]


def _expire(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submit("acme", job=msgspec.structs.replace(spec(), queue_timeout_s=60.0))
    sim.tick(61)
    return key, Round(sweep=True, settled=True), []


def _time_out(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = started(sim, sim.submit("acme"))
    sim.tick(3600 + RULES.timeout_grace_s + 1)
    return key, Round(sweep=True, settled=True), [worker(sim, running=[key])]


def _dispatch(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submit("acme")
    return key, Round(), [worker(sim)]


def _rerelease(sim: Sim) -> tuple[Key, Round, list[WorkerHeartbeat]]:
    key = sim.submit("acme")
    sim.dispatch(p for p in sim.plan({"default": pool()}).picks)
    sim.tick(RULES.redispatch_after_s)
    return key, Round(sweep=True, settled=True), [worker(sim)]


CASES = {
    "a submission within its limits is admitted": Case(_admit, rc.Admit, ev.JobQueued, "admitted: position 1"),
    "a submission over its tenant's queue is rejected": Case(_reject, rc.Reject, ev.JobRejected, "your limit is 1"),
    "a queued job asked to cancel is cancelled": Case(_cancel, rc.Cancel, ev.JobCancelled, "cancel was requested"),
    "a failed attempt's retry waits its backoff": Case(_retry, rc.ScheduleRetry, ev.JobRetryScheduled, "backoff"),
    "a running attempt whose worker is gone is lost": Case(_lose, rc.Lose, ev.JobLost, "stopped heartbeating"),
    "a running attempt its worker does not list is lost": Case(
        _lose_unlisted, rc.Lose, ev.JobLost, "stopped heartbeating"
    ),
    "a job queued past its queue timeout expires": Case(_expire, rc.Expire, ev.JobExpired, "over its queue timeout"),
    "a job running past its timeout and the grace times out": Case(
        _time_out, rc.TimeOut, ev.JobTimedOut, "over its timeout"
    ),
    "a queued job that fits a free slot is dispatched": Case(
        _dispatch, rc.Dispatch, ev.JobDispatched, "fair plan picked it for pool default"
    ),
    "an attempt dispatched long ago and not started is released again": Case(
        _rerelease, rc.Rerelease, None, "not started"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reconcile_decides_each_kind_with_its_event_and_why(case: Case) -> None:
    sim = Sim()
    key, inputs, beats = case.setup(sim)
    intents = [i for i in sim.reconcile(inputs, beats) if i.key == key]
    assert [type(i) for i in intents] == [case.kind]
    (intent,) = intents
    assert case.why in intent.why
    if case.event is None:
        return
    assert isinstance(intent, rc.Append) and isinstance(intent.event, case.event)
    assert (intent.expect, intent.event.occurred_at) == (sim.state.jobs[key].version, sim.now)
    assert intent.msg_id == f"{key[1]}:{intent.event.attempt}:{intent.kind}"
    sim.carry_out([intent])  # the event applies to the state the decision was taken on


def test_a_retry_waits_between_half_and_all_of_its_backoff_step() -> None:
    sim = Sim()
    key, _, _ = _retry(sim)
    not_before = sim.schedule_retry(key)
    assert timedelta(seconds=4.0) <= not_before - sim.now <= timedelta(seconds=8.0)


def test_nothing_is_lost_before_the_scheduler_has_watched_heartbeats_for_a_lease() -> None:
    sim = Sim()
    _lose(sim)
    assert sim.reconcile(Round(sweep=True, settled=False)) == []


def test_a_rerelease_waits_a_full_period_after_the_last_one() -> None:
    sim = Sim()
    key, inputs, beats = _rerelease(sim)
    recent = Round(sweep=True, settled=True, rereleased={key: sim.now - timedelta(seconds=1)})
    assert sim.reconcile(recent, beats) == []
    assert [type(i) for i in sim.reconcile(inputs, beats)] == [rc.Rerelease]


def test_a_round_decides_each_job_once_and_a_cancel_comes_before_its_expiry() -> None:
    sim = Sim()
    key, _, _ = _expire(sim)
    sim.append(ev.JobCancelRequested(event_id="c", occurred_at=sim.now, tenant="acme", job_id=key[1], attempt=0))
    sim.project()
    assert [type(i) for i in sim.reconcile(Round(dirty=[key], sweep=True, settled=True))] == [rc.Cancel]


def test_a_round_that_changes_a_job_leaves_dispatch_to_the_next_round() -> None:
    sim = Sim()
    queued, fresh = sim.submit("acme"), sim.submitted("acme")
    first = sim.reconcile(Round(dirty=[fresh]), [worker(sim)])
    assert [(type(i), i.key) for i in first] == [(rc.Admit, fresh)]
    sim.carry_out(first)
    second = sim.reconcile(Round(), [worker(sim)])
    assert sorted((type(i).__name__, i.key) for i in second) == [("Dispatch", queued), ("Dispatch", fresh)]


def test_admissions_in_one_round_count_the_queue_and_spend_the_bucket_one_after_another() -> None:
    sim = Sim(defaults=TenantLimits(max_queued=2, submit_rate_per_s=1000.0))
    keys = [sim.submitted("acme") for _ in range(3)]
    intents = sim.reconcile(Round(dirty=keys))
    assert [type(i) for i in intents] == [rc.Admit, rc.Admit, rc.Reject]
    assert [i.event.position for i in intents[:2] if isinstance(i.event, ev.JobQueued)] == [1, 2]


def test_the_same_state_workers_time_and_ids_give_the_same_intents() -> None:
    sim = Sim()
    churn(sim, random.Random(7), 20, {"default": pool(slots=8)}, ("a", "b"))
    sim.submitted("a")
    inputs = Round(dirty=list(sim.state.jobs), sweep=True, settled=True)
    first = rc.reconcile(sim.state, [worker(sim)], sim.now, RULES, inputs, ids())
    again = rc.reconcile(sim.state, [worker(sim)], sim.now, RULES, inputs, ids())
    assert first == again and first


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 30), ahead=st.sampled_from((0.0, 5.0, 90.0, 4000.0)))
def test_a_replayed_state_decides_exactly_like_the_live_one(seed: int, steps: int, ahead: float) -> None:
    sim = Sim()
    churn(sim, random.Random(seed), steps, {"default": pool(slots=6), "gpu": pool("gpu", gpu=2)}, ("a", "b", "c"))
    sim.submitted("b")
    sim.tick(ahead)
    inputs = Round(dirty=sorted(sim.state.jobs), sweep=True, settled=True)
    beats = [worker(sim, running=sorted(sim.state.jobs)[::2])]
    live = rc.reconcile(sim.state, beats, sim.now, RULES, inputs, ids())
    assert rc.reconcile(sim.replay(), beats, sim.now, RULES, inputs, ids()) == live


# --- nothing accepted is ever stuck: the sweep decides what awaited a decision too long ------------------------------


def _undecided_submission(sim: Sim) -> Key:
    return sim.submitted("acme")


def _undecided_over_quota(sim: Sim) -> Key:
    sim.configure("acme", max_queued=1)
    sim.submit("acme")
    return sim.submitted("acme")


def _undecided_cancel(sim: Sim) -> Key:
    key, _, _ = _cancel(sim)
    return key


def _undecided_backoff(sim: Sim) -> Key:
    key, _, _ = _retry(sim)
    return key


def _undecided_cancel_of_a_submission(sim: Sim) -> Key:
    key = sim.submitted("acme")
    sim.append(ev.JobCancelRequested(event_id="c", occurred_at=sim.now, tenant="acme", job_id=key[1], attempt=0))
    sim.project()
    return key


def _queued(sim: Sim) -> Key:
    return sim.submit("acme", pool="nowhere")


def _running(sim: Sim) -> Key:
    return started(sim, sim.submit("acme"))


@dataclass
class Stuck:
    """A job the log left awaiting a decision (or not), then `after` seconds with no round marking it dirty; the
    sweep must decide it with `kind`, or leave it alone (`kind` None)."""

    setup: Callable[[Sim], Key]
    after: float
    kind: type[Intent] | None


STUCK = {
    "a submission undecided past the threshold is admitted": Stuck(_undecided_submission, 2.0, rc.Admit),
    "one over its quota is rejected": Stuck(_undecided_over_quota, 2.5, rc.Reject),
    "a queued job whose cancel was not answered is cancelled": Stuck(_undecided_cancel, 2.0, rc.Cancel),
    "a submission asked to cancel is cancelled, not admitted": Stuck(_undecided_cancel_of_a_submission, 3, rc.Cancel),
    "a failed attempt whose backoff was not set gets it": Stuck(_undecided_backoff, 60.0, rc.ScheduleRetry),
    "a submission younger than the threshold waits for its own round": Stuck(_undecided_submission, 1.9, None),
    "a queued job awaits the plan, not a decision": Stuck(_queued, 600.0, None),
    "a running job awaits its worker, not a decision": Stuck(_running, 600.0, None),
}


@pytest.mark.parametrize("case", STUCK.values(), ids=STUCK.keys())
def test_the_sweep_decides_every_job_that_awaited_a_decision_too_long(case: Stuck) -> None:
    sim = Sim()
    key = case.setup(sim)
    sim.tick(case.after)
    beats = [worker(sim, running=[key])]
    assert [i for i in sim.reconcile(Round(settled=True), beats) if i.key == key and not isinstance(i, rc.Dispatch)] \
        == [], "outside the sweep only the dirty jobs are decided"
    swept = [i for i in sim.reconcile(Round(sweep=True, settled=True), beats) if i.key == key]
    assert [type(i) for i in swept] == ([case.kind] if case.kind else [])
    if swept:
        sim.carry_out(swept)  # decided on the state as it is: the compare-and-set holds
        assert key not in rc.overdue(sim.state, sim.now, RULES), "a decided job no longer awaits one"


def test_the_swept_admissions_count_the_queue_and_spend_the_bucket_with_the_dirty_ones() -> None:
    sim = Sim(defaults=TenantLimits(max_queued=2, submit_rate_per_s=1000.0))
    stuck = [sim.submitted("acme"), sim.submitted("acme")]
    sim.tick(RULES.decide_after_s)
    fresh = sim.submitted("acme")
    intents = sim.reconcile(Round(dirty=[fresh], sweep=True))
    assert [(type(i), i.key) for i in intents] == [(rc.Admit, stuck[0]), (rc.Admit, stuck[1]), (rc.Reject, fresh)]


def test_a_new_leader_re_releases_an_attempt_dispatched_just_before_the_old_one_died() -> None:
    # The old leader appended `job.dispatched` and died before publishing the work item: the new one folds the log
    # (the attempt is dispatched, nobody starts it) and re-releases it once `redispatch_after_s` has passed.
    sim = Sim()
    key = sim.submit("acme")
    sim.dispatch(sim.plan({"default": pool()}).picks)
    leader = sim.replay()
    sim.tick(RULES.redispatch_after_s - 0.5)
    early = rc.reconcile(leader, [worker(sim)], sim.now, RULES, Round(dirty=list(leader.jobs), sweep=True), ids())
    assert early == []
    sim.tick(0.5)
    due = rc.reconcile(leader, [worker(sim)], sim.now, RULES, Round(sweep=True), ids())
    assert [(type(i), i.key) for i in due] == [(rc.Rerelease, key)]
