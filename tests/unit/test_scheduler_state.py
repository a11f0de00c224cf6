"""The scheduler's working state: folding events is idempotent, superseded attempts change nothing, terminal jobs
leave, tenant limits follow the latest configuration, the submit bucket is spent once per admission and a run's
resource use is charged once when it ends."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulate import T0, Sim, churn, dump_jobs, dump_tenants, fold, pool

from xrunner.contracts import events as ev
from xrunner.contracts import lifecycle
from xrunner.contracts.policy import RATE_BURST_S, refill
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.state import USAGE_HALF_LIFE_S, SchedulerState

POOLS = {
    "default": pool("default", workers=2, slots=6, cpu=4000, memory=8192),
    "highmem": pool("highmem", slots=2, cpu=16000, memory=65536),
    "gpu": pool("gpu", slots=2, cpu=16000, memory=65536, gpu=2),
}


def running(sim: Sim, tenant: str = "acme", cpu: int = 1000, memory: int = 256, gpu: int = 0) -> tuple[str, str]:
    """A job of `tenant` that runs from `sim.now` on."""
    key = sim.submit(tenant, cpu=cpu, memory=memory, gpu=gpu)
    sim.start(sim.dispatch([p for p in sim.plan(POOLS).picks if p.key == key]))
    assert sim.state.jobs[key].state == "running"
    return key


def tenant_view(state: SchedulerState) -> dict[str, object]:
    """Every tenant's limits, bucket and fences (not its usage)."""
    return {name: (lim, bucket, config, spent) for name, (lim, bucket, _, config, spent) in dump_tenants(state).items()}


# --- idempotency -----------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 25), cuts=st.lists(st.floats(0, 1), max_size=6))
def test_folding_any_batch_twice_leaves_the_same_jobs_buckets_and_limits_as_folding_it_once(
    seed: int, steps: int, cuts: list[float]
) -> None:
    sim = Sim()
    churn(sim, random.Random(seed), steps, POOLS, ("a", "b"))
    bounds = sorted({0, len(sim.log), *(int(c * len(sim.log)) for c in cuts)})
    once, twice = SchedulerState(sim.state.defaults), SchedulerState(sim.state.defaults)
    for start, end in itertools.pairwise(bounds):
        batch = sim.log[start:end]
        for seq, event in batch:
            once.apply(seq, event)
        for seq, event in [*batch, *batch]:  # a batch redelivered after its transaction failed
            twice.apply(seq, event)
    assert dump_jobs(twice) == dump_jobs(once) == dump_jobs(sim.state)
    assert tenant_view(twice) == tenant_view(once) == tenant_view(sim.state)


def test_a_runs_resource_use_is_charged_once_when_its_batch_is_folded_again() -> None:
    sim = Sim()
    key = running(sim, cpu=2000, memory=512)
    sim.tick(100)
    sim.finish([key])
    assert key not in sim.state.jobs
    once = fold(sim.log)
    twice = fold([*sim.log, *sim.log])  # the projector's transaction failed after the fold: the batch comes again
    usage = twice.tenant("acme").usage
    assert (usage.cpu, usage.memory) == (once.tenant("acme").usage.cpu, once.tenant("acme").usage.memory)
    assert (usage.cpu, usage.memory) == (2000 * 100.0, 512 * 100.0)


def test_the_scheduler_applying_its_own_appends_before_the_projector_changes_nothing() -> None:
    sim = Sim()
    sim.configure("acme", weight=2.0, max_inflight=3)
    keys = [running(sim), running(sim)]
    sim.tick(30)
    sim.finish(keys[:1])
    sim.lose(keys[1])
    sim.project()
    replayed = sim.replay()
    assert dump_jobs(sim.state) == dump_jobs(replayed)
    assert dump_tenants(sim.state) == dump_tenants(replayed)


# --- attempts and terminal states ------------------------------------------------------------------------------------


def test_the_events_of_a_superseded_attempt_change_nothing() -> None:
    sim = Sim()
    key = running(sim)
    sim.tick(10)
    sim.lose(key)  # attempt 1 is lost after 10 s; attempt 2 is dispatched and runs
    sim.start(sim.dispatch(sim.plan(POOLS).picks))
    assert (sim.state.jobs[key].state, sim.state.jobs[key].attempt) == ("running", 2)
    jobs, tenants = dump_jobs(sim.state), dump_tenants(sim.state)
    sim.tick(10)
    common = {"tenant": key[0], "job_id": key[1], "attempt": 1, "occurred_at": sim.now}
    for stale in (
        ev.JobStarted(event_id="s1", worker_id="w9", sandbox="process", **common),
        ev.ArtifactStored(
            event_id="s2",
            artifact_id="x",
            name="out/x",
            key="k",
            size=1,
            sha256="0" * 64,
            content_type="text/plain",
            **common,
        ),
        ev.JobSucceeded(event_id="s3", **common),
        ev.JobFailed(event_id="s4", exit_code=1, **common),
        ev.JobTimedOut(event_id="s5", timeout_s=5.0, **common),
        ev.JobLost(event_id="s6", worker_id="w9", **common),
    ):
        sim.append(stale)
        sim.project()
    assert dump_jobs(sim.state) == jobs
    assert dump_tenants(sim.state) == tenants
    assert sim.state.tenant("acme").usage.cpu == 1000 * 10.0  # only attempt 1's ten seconds, charged when lost


@pytest.mark.parametrize(
    ("end", "fields", "state"),
    [
        (ev.JobSucceeded, {}, "succeeded"),
        (ev.JobFailed, {"exit_code": 3, "final": True}, "failed"),
        (ev.JobTimedOut, {"timeout_s": 5.0}, "timed_out"),
        (ev.JobCancelled, {}, "cancelled"),
    ],
)
def test_a_job_that_ends_leaves_the_working_state(
    end: type[ev.JobEvent], fields: dict[str, object], state: str
) -> None:
    sim = Sim()
    key = running(sim)
    other = sim.submit("acme")
    view = sim.state.apply(
        len(sim.log) + 1, end(event_id="x", occurred_at=sim.now, tenant="acme", job_id=key[1], attempt=1, **fields)
    )
    assert view is not None and view.state == state and lifecycle.is_terminal(view.state)
    assert key not in sim.state.jobs
    assert other in sim.state.jobs


def test_a_rejected_and_an_expired_job_leave_the_working_state() -> None:
    sim = Sim(defaults=TenantLimits(max_queued=1))
    first, second = sim.submitted("acme"), sim.submitted("acme")
    assert sim.admit(first) and not sim.admit(second)
    assert list(sim.state.jobs) == [first]
    sim.append(ev.JobExpired(event_id="x", occurred_at=sim.now, tenant="acme", job_id=first[1], waited_s=60.0))
    sim.project()
    assert sim.state.jobs == {}


def test_a_job_that_fails_with_a_retry_stays_queued_in_backoff() -> None:
    sim = Sim()
    key = running(sim)
    sim.fail(key, exit_code=1, final=False)
    view = sim.state.jobs[key]
    assert (view.state, view.reason, view.retries_used, view.not_before) == ("queued", "backoff", 1, None)


# --- tenants ---------------------------------------------------------------------------------------------------------


def configured(seq: int, weight: float, max_inflight: int, rate: float = 10.0) -> tuple[int, ev.TenantConfigured]:
    event = ev.TenantConfigured(
        event_id=f"c{seq}",
        occurred_at=T0,
        tenant="acme",
        weight=weight,
        max_inflight=max_inflight,
        max_queued=50,
        submit_rate_per_s=rate,
    )
    return seq, event


def test_a_tenant_has_the_defaults_until_it_is_configured() -> None:
    defaults = TenantLimits(weight=1.0, max_inflight=7, max_queued=9, submit_rate_per_s=3.0)
    state = SchedulerState(defaults)
    assert state.tenant("acme").limits == defaults
    state.apply(*configured(4, 2.0, 3))
    assert state.tenant("acme").limits == TenantLimits(
        weight=2.0, max_inflight=3, max_queued=50, submit_rate_per_s=10.0, configured=True
    )
    assert state.tenant("other").limits == defaults


@pytest.mark.parametrize(
    "order",
    [
        [configured(5, 2.0, 3), configured(9, 3.0, 4)],
        [configured(5, 2.0, 3), configured(9, 3.0, 4), configured(5, 2.0, 3)],  # the older one redelivered
        [configured(9, 3.0, 4), configured(5, 2.0, 3)],
        [configured(9, 3.0, 4), configured(9, 3.0, 4)],
    ],
)
def test_tenant_limits_follow_the_latest_configuration(order: list[tuple[int, ev.TenantConfigured]]) -> None:
    state = SchedulerState(TenantLimits())
    for seq, event in order:
        state.apply(seq, event)
    rec = state.tenant("acme")
    assert (rec.limits.weight, rec.limits.max_inflight, rec.config_seq) == (3.0, 4, 9)


def test_the_bucket_is_spent_once_per_admission() -> None:
    sim = Sim()
    sim.configure("acme", rate=5.0)
    keys = [sim.submitted("acme") for _ in range(12)]
    admitted = [sim.admit(key) for key in keys]
    burst = int(5.0 * RATE_BURST_S)
    assert admitted == [True] * burst + [False] * (12 - burst)
    rec = sim.state.tenant("acme")
    assert rec.bucket.tokens == 0.0 and rec.bucket.at == sim.now
    assert rec.bucket_seq == max(seq for seq, e in sim.log if isinstance(e, ev.JobQueued))
    assert dump_tenants(sim.state) == dump_tenants(sim.replay())

    # A second later five tokens are back; the queued jobs' later life (a retry, a lost worker) spends none.
    sim.tick(1.0)
    key = keys[0]
    for _ in range(2):
        sim.start(sim.dispatch([p for p in sim.plan(POOLS).picks if p.key == key]))
        sim.lose(key)
    sim.start(sim.dispatch([p for p in sim.plan(POOLS).picks if p.key == key]))
    sim.fail(key, final=False)
    assert (sim.state.jobs[key].attempt, sim.state.jobs[key].reason) == (3, "backoff")
    sim.append(ev.JobQueued(event_id="back", occurred_at=sim.now, tenant=key[0], job_id=key[1], attempt=3, pool=""))
    sim.project()  # a retry put back in the queue is not a new admission
    assert sim.state.jobs[key].state == "queued"
    assert refill(sim.state.tenant("acme").bucket, 5.0, sim.now).tokens == 5.0
    assert [sim.admit(sim.submitted("acme")) for _ in range(6)] == [True] * 5 + [False]


def test_a_queued_event_folded_again_does_not_spend_again() -> None:
    sim = Sim()
    sim.configure("acme", rate=5.0)
    sim.submit("acme")
    tokens = sim.state.tenant("acme").bucket.tokens
    assert tokens == 5.0 * RATE_BURST_S - 1
    for seq, event in sim.log:
        sim.state.apply(seq, event)
    assert sim.state.tenant("acme").bucket.tokens == tokens


# --- usage -----------------------------------------------------------------------------------------------------------


def test_a_run_is_charged_its_resource_seconds_when_it_ends_and_the_charge_decays_with_the_half_life() -> None:
    sim = Sim()
    key = running(sim, cpu=2000, memory=1024, gpu=1)
    sim.tick(60)
    sim.finish([key])
    usage = sim.state.tenant("acme").usage
    assert (usage.cpu, usage.memory, usage.gpu, usage.at) == (2000 * 60.0, 1024 * 60.0, 60.0, sim.now)
    later = usage.decayed(sim.now + timedelta(seconds=USAGE_HALF_LIFE_S))
    assert (later.cpu, later.memory, later.gpu) == pytest.approx((1000 * 60.0, 512 * 60.0, 30.0))


def test_runs_that_end_are_charged_the_same_usage_in_whichever_order_their_ends_are_folded() -> None:
    sim = Sim()
    early, late = running(sim, cpu=2000), running(sim, cpu=4000, gpu=1)
    sim.tick(60)
    sim.finish([early])
    sim.tick(200)
    sim.finish([late])
    # The working copy folds its own appends at once and the workers' events when projected: a run that ended
    # earlier can be charged after one that ended later.
    in_order, swapped = fold(sim.log), fold(sorted(sim.log, key=lambda e: isinstance(e[1], ev.JobSucceeded)
                                                   and e[1].job_id == early[1]))
    charged = in_order.tenant("acme").usage
    assert (swapped.tenant("acme").usage.cpu, swapped.tenant("acme").usage.gpu) == pytest.approx(
        (charged.cpu, charged.gpu), rel=1e-12)
    assert charged.cpu == pytest.approx(2000 * 60 * 0.5 ** (200 / USAGE_HALF_LIFE_S) + 4000 * 260)


def test_a_job_lost_before_it_started_is_not_charged() -> None:
    sim = Sim()
    key = sim.submit("acme")
    sim.dispatch(sim.plan(POOLS).picks)
    sim.tick(60)
    # A dispatched attempt is never lost by the scheduler's sweep (it is re-released), but the fold must not charge
    # one that is lost anyway.
    sim.append(ev.JobLost(event_id="lost", occurred_at=sim.now, tenant=key[0], job_id=key[1], attempt=1,
                          worker_id=""))
    sim.project()
    assert sim.state.tenant("acme").usage.cpu == 0.0


def test_a_run_that_ends_while_the_scheduler_reloads_the_job_after_a_lost_race_is_still_charged() -> None:
    sim = Sim()
    key = running(sim)
    sim.tick(100)
    # The worker's `job.succeeded` is in the log but not yet projected when the scheduler's own append (say a
    # `job.lost`) loses its compare-and-set: the scheduler reloads the job from its history, then the projector
    # folds the success.
    sim.append(ev.JobSucceeded(event_id="done", occurred_at=sim.now, tenant=key[0], job_id=key[1], attempt=1))
    history = [(seq, event) for seq, event in sim.log if getattr(event, "job_id", None) == key[1]]
    sim.state.reload_job(history)
    sim.project()
    assert key not in sim.state.jobs
    assert sim.state.tenant("acme").usage.cpu == fold(sim.log).tenant("acme").usage.cpu == 1000 * 100.0


@pytest.mark.parametrize("passed_over", [ev.ArtifactPreviewed, ev.JobAttached])
def test_a_job_reloaded_after_a_lost_race_expects_its_last_event_even_one_the_fold_passes_over(
        passed_over: type[ev.JobEvent]) -> None:
    sim = Sim()
    key = running(sim)
    fields = {"artifact_id": "a1", "kind": "text"} if passed_over is ev.ArtifactPreviewed else {"subject": "alice"}
    sim.append(passed_over(event_id="late", occurred_at=sim.now, tenant=key[0], job_id=key[1], attempt=1, **fields))
    history = [(seq, event) for seq, event in sim.log if getattr(event, "job_id", None) == key[1]]
    view = sim.state.reload_job(history)
    assert view is not None and view.state == "running"
    assert lifecycle.replay(history).version < history[-1][0]  # type: ignore[union-attr]  # the fold's own version
    assert view.version == history[-1][0], "the next compare-and-set must expect the job's last event"

