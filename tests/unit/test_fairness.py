"""The fair plan: quotas hold, no tenant starves, priority then FIFO inside a tenant, running shares follow the
weights over time, a replayed state plans like the live one, and every waiting job says why. Hypothesis properties
over random tenants, job mixes and pools, and table-driven cases."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulate import Sim, churn, dump_jobs, dump_tenants, heartbeat, plan_of, pool, random_job

from xrunner.contracts import events as ev
from xrunner.scheduler import fairness, placement
from xrunner.scheduler.fairness import LOOKAHEAD, Pick, Plan, need_of
from xrunner.scheduler.placement import Pool
from xrunner.scheduler.state import Key

BIG = {"default": pool("default", workers=1, slots=8, cpu=64000, memory=262144)}


@st.composite
def pools(draw: st.DrawFn) -> dict[str, Pool]:
    """One to three pools of one to three workers each."""
    out = {}
    for name, gpus in (("default", (0,)), ("highmem", (0,)), ("gpu", (1, 2, 4))):
        if name == "default" or draw(st.booleans()):
            workers = draw(st.integers(1, 3))
            out[name] = Pool(
                name,
                workers,
                workers * draw(st.integers(1, 4)),
                draw(st.sampled_from((1000, 4000, 16000))),
                draw(st.sampled_from((1024, 8192, 65536))),
                draw(st.sampled_from(gpus)),
            )
    return out


tenants = st.lists(st.tuples(st.sampled_from((0.25, 1.0, 2.0, 5.0)), st.integers(0, 8)), min_size=1, max_size=3).map(
    lambda limits: {name: lim for name, lim in zip("abc", limits, strict=False)}
)


def configured_sim(limits: dict[str, tuple[float, int]]) -> Sim:
    sim = Sim()
    for name, (weight, max_inflight) in limits.items():
        sim.configure(name, weight=weight, max_inflight=max_inflight)
    return sim


def picked(plan: Plan, tenant: str | None = None) -> list[Key]:
    return [p.key for p in plan.picks if tenant in (None, p.key[0])]


# --- quotas ----------------------------------------------------------------------------------------------------------


def check_quotas(sim: Sim, plan: Plan, pool_map: dict[str, Pool]) -> None:
    """The plan (before dispatch) keeps every tenant under max_inflight and every pool under its slots."""
    for name, p in pool_map.items():
        assert sim.in_pool(name) <= p.slots, f"pool {name} runs more than its slots"
    keys = picked(plan)
    assert len(keys) == len(set(keys))
    for tenant, count in Counter(k[0] for k in keys).items():
        room = sim.state.tenant(tenant).limits.max_inflight - sim.inflight(tenant)
        assert count <= max(0, room), f"tenant {tenant} is given more than its max_inflight"
    for name, count in Counter(p.pool for p in plan.picks).items():
        assert count <= max(0, pool_map[name].slots - sim.in_pool(name)), f"pool {name} is given more than its slots"
    for pick in plan.picks:
        view = sim.state.jobs[pick.key]
        assert view.state == "queued"
        assert pick.pool in [c.name for c in placement.candidates(need_of(view), pool_map)]


@settings(max_examples=100, deadline=None)
@given(limits=tenants, pool_map=pools(), seed=st.integers(0, 2**32), steps=st.integers(1, 20))
def test_quotas_are_never_exceeded_by_any_plan(
    limits: dict[str, tuple[float, int]], pool_map: dict[str, Pool], seed: int, steps: int
) -> None:
    sim = configured_sim(limits)
    churn(sim, random.Random(seed), steps, pool_map, list(limits), check=lambda s, p: check_quotas(s, p, pool_map))
    check_quotas(sim, sim.plan(pool_map), pool_map)
    configs = Counter(e.tenant for _, e in sim.log if isinstance(e, ev.TenantConfigured))
    for tenant, (_, max_inflight) in limits.items():
        if configs[tenant] == 1:  # never reconfigured: the cap held all along
            assert sim.inflight(tenant) <= max_inflight


def test_a_tenant_at_max_inflight_waits_with_that_reason_while_others_use_the_free_slots() -> None:
    sim = Sim()
    sim.configure("a", max_inflight=2)
    a = sim.submit_many("a", 5)
    b = sim.submit_many("b", 2)
    plan = sim.plan(BIG)
    assert sorted(picked(plan)) == sorted([*a[:2], *b])
    assert {key: plan.waiting[key] for key in a[2:]} == dict.fromkeys(a[2:], ("tenant_at_max_inflight", None))

    sim.start(sim.dispatch(plan.picks))
    again = sim.plan(BIG)
    assert again.picks == []
    assert {key: again.waiting[key][0] for key in a[2:]} == dict.fromkeys(a[2:], "tenant_at_max_inflight")


def test_a_full_pool_makes_every_queued_job_wait_pool_full() -> None:
    sim = Sim()
    first = sim.submit_many("a", 8)
    sim.start(sim.dispatch(sim.plan(BIG).picks))
    assert sim.inflight("a") == 8
    rest = [*sim.submit_many("a", 3), *sim.submit_many("b", 2)]
    plan = sim.plan(BIG)
    assert plan.picks == []
    assert plan.waiting == dict.fromkeys(rest, ("pool_full", None))
    sim.finish(first[:1])
    assert picked(sim.plan(BIG)) == [rest[3]]  # b runs nothing, a runs seven: b goes first


# --- no starvation ---------------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    busy=st.lists(
        st.tuples(st.integers(1, 6), st.integers(0, 300), st.sampled_from((0.25, 1.0, 4.0, 100.0))),
        min_size=1,
        max_size=3,
    ),
    idle=st.lists(st.tuples(st.integers(1, 10), st.sampled_from((0.25, 1.0, 4.0))), min_size=1, max_size=3),
    spare=st.integers(0, 4),
    cpus=st.lists(st.sampled_from((250, 1000, 4000)), min_size=1, max_size=4),
)
def test_an_idle_tenant_is_served_in_the_very_next_plan_however_large_the_other_backlogs(
    busy: list[tuple[int, int, float]], idle: list[tuple[int, float]], spare: int, cpus: list[int]
) -> None:
    """Tenants that run something and have long backlogs; tenants that have never run anything and submit last.
    With at least one free slot per idle tenant, each idle tenant's first job is picked in the next plan."""
    sim = Sim()
    running = sum(n for n, _, _ in busy)
    slots = {"default": pool("default", workers=2, slots=running + len(idle) + spare, cpu=8000, memory=8192)}
    for i, (n, backlog, weight) in enumerate(busy):
        name = f"busy{i}"
        sim.configure(name, weight=weight, max_inflight=n + 1000)
        first = [sim.submit(name, cpu=cpus[j % len(cpus)]) for j in range(n)]
        sim.start(sim.dispatch(Pick(key, "default") for key in first))
        for j in range(backlog):
            sim.submit(name, cpu=cpus[j % len(cpus)], priority=1)
    heads = []
    for i, (n, weight) in enumerate(idle):
        name = f"idle{i}"
        sim.configure(name, weight=weight, max_inflight=1)
        heads.append(sim.submit_many(name, n, cpu=4000)[0])
    plan = sim.plan(slots)
    assert set(heads) <= set(picked(plan))


def test_a_tenant_with_ten_jobs_is_served_next_behind_another_tenants_five_hundred() -> None:
    sim = Sim()
    a = sim.submit_many("a", 500)
    sim.start(sim.dispatch(sim.plan(BIG).picks))
    assert picked(sim.plan(BIG)) == []
    b = sim.submit_many("b", 10)
    sim.finish([k for k in a if k in sim.state.jobs][:1])  # one slot frees up
    assert picked(sim.plan(BIG)) == [b[0]]


def test_a_tenant_with_nothing_running_is_served_next_even_when_it_ran_a_lot_recently() -> None:
    """The module promises "a tenant with nothing running has share 0, so it is served in the very next round,
    however large another tenant's backlog"; recent usage must not hold it back behind a busy tenant."""
    cluster = {"default": pool("default", slots=4, cpu=4000, memory=1024)}
    sim = Sim()
    earlier = sim.submit_many("b", 4)
    sim.start(sim.dispatch(sim.plan(cluster).picks))
    sim.tick(600)
    sim.finish(earlier)  # b used the whole cluster for ten minutes, and now runs nothing
    sim.submit_many("a", 500)
    sim.start(sim.dispatch(sim.plan(cluster).picks[:3]))  # a runs three jobs, one slot is free
    b = sim.submit_many("b", 10)
    plan = sim.plan(cluster)
    assert picked(plan) == [b[0]], f"b waits: {plan.waiting[b[0]]}"


# --- priority then FIFO ----------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    jobs=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(-2, 2), st.sampled_from((0.0, 0.0, 1.0, 7.5))),
        min_size=1,
        max_size=40,
    ),
    slots=st.integers(1, 24),
    max_inflight=st.integers(0, 10),
)
def test_inside_a_tenant_jobs_start_by_priority_then_first_come_first_served(
    jobs: list[tuple[str, int, float]], slots: int, max_inflight: int
) -> None:
    sim = Sim()
    sim.configure("a", max_inflight=max_inflight)
    submitted: dict[str, list[tuple[int, int, Key]]] = {}
    for index, (tenant, priority, pause) in enumerate(jobs):
        sim.tick(pause)
        key = sim.submit(tenant, priority=priority)
        submitted.setdefault(tenant, []).append((-priority, index, key))
    plan = sim.plan({"default": pool("default", slots=slots, cpu=8000, memory=8192)})
    assert len(plan.picks) == min(
        slots, sum(min(len(v), max_inflight if t == "a" else 1000) for t, v in submitted.items())
    )
    for tenant, entries in submitted.items():
        mine = picked(plan, tenant)
        assert mine == [key for _, _, key in sorted(entries)][: len(mine)]


def test_a_later_job_with_a_higher_priority_starts_first_and_equal_priorities_go_in_order() -> None:
    sim = Sim()
    low = sim.submit("a", priority=0)
    sim.tick(1)
    high = sim.submit("a", priority=5)
    same = sim.submit("a", priority=5)
    plan = sim.plan({"default": pool("default", slots=2)})
    assert picked(plan) == [high, same]
    assert plan.waiting == {low: ("pool_full", None)}


def test_a_job_that_cannot_start_does_not_block_smaller_jobs_behind_it() -> None:
    sim = Sim()
    cluster = {"default": pool("default", slots=4, cpu=4000), "gpu": pool("gpu", slots=1, cpu=4000, gpu=1)}
    huge = sim.submit("a", priority=9, cpu=64000)
    gpu = sim.submit_many("a", 2, priority=5, gpu=1)
    small = sim.submit("a")
    plan = sim.plan(cluster)
    assert [(p.key, p.pool) for p in plan.picks] == [(gpu[0], "gpu"), (small, "default")]
    assert plan.waiting == {huge: ("no_worker_fits", None), gpu[1]: ("pool_full", None)}


def test_backfill_looks_only_so_deep_into_a_tenants_queue() -> None:
    sim = Sim()
    stuck = sim.submit_many("a", LOOKAHEAD, priority=1, gpu=1)  # no GPU pool: these fit nowhere
    behind = sim.submit("a")
    plan = sim.plan(BIG)
    assert plan.picks == []
    assert {plan.waiting[k] for k in stuck} == {("no_worker_fits", None)}
    assert behind in plan.waiting

    within = Sim()
    within.submit_many("a", LOOKAHEAD - 1, priority=1, gpu=1)
    last = within.submit("a")
    assert picked(within.plan(BIG)) == [last]


def test_a_dispatch_round_over_a_deep_backlog_looks_past_the_jobs_it_picks() -> None:
    """100 free slots, 60 jobs up front that fit nowhere, 900 behind them: the round picks 100 of those behind,
    as the whole order does, though it orders only `free + LOOKAHEAD` jobs of the queue."""
    sim = Sim()
    sim.submit_many("a", LOOKAHEAD - 4, priority=1, gpu=1)
    behind = sim.submit_many("a", 900)
    slots = {"default": pool("default", workers=1, slots=100, cpu=10**6, memory=10**7)}
    plan = fairness.plan(sim.state, slots, sim.now, waiting=False)
    assert picked(plan) == behind[:100]
    assert plan.picks == sim.plan(slots).picks


def test_a_job_in_backoff_waits_until_its_not_before() -> None:
    sim = Sim()
    key = sim.submit("a")
    sim.start(sim.dispatch(sim.plan(BIG).picks))
    sim.fail(key, exit_code=1, final=False)
    assert sim.plan(BIG).waiting == {key: ("backoff", None)}
    not_before = sim.schedule_retry(key)
    sim.tick((not_before - sim.now).total_seconds() - 0.001)
    assert sim.plan(BIG).waiting == {key: ("backoff", None)}
    sim.tick(0.001)
    assert picked(sim.plan(BIG)) == [key]


def test_a_job_whose_worker_was_lost_goes_again_at_once() -> None:
    sim = Sim()
    key = sim.submit("a")
    sim.start(sim.dispatch(sim.plan(BIG).picks))
    sim.lose(key)
    assert picked(sim.plan(BIG)) == [key]


# --- weights over time -----------------------------------------------------------------------------------------------


def run_shares(
    weights: dict[str, float], shapes: dict[str, tuple[int, int]], steps: int, slots: int
) -> dict[str, float]:
    """Every tenant keeps an endless backlog of identical jobs that run three steps; each step is plan → dispatch →
    start, ten seconds apart. Returns each tenant's time-averaged dominant share of the cluster after warm-up."""
    cluster = {"default": pool("default", workers=2, slots=slots, cpu=64000, memory=65536)}
    total = fairness.capacity(cluster)
    sim = Sim()
    for name, weight in weights.items():
        sim.configure(name, weight=weight, max_inflight=1000)
    started: dict[Key, int] = {}
    shares = dict.fromkeys(weights, 0.0)
    for step in range(steps):
        for name, (cpu, memory) in shapes.items():
            sim.submit_many(name, slots - len(sim.jobs(name, ("queued",))), cpu=cpu, memory=memory)
        ended = [key for key, at in started.items() if step - at >= 3]
        sim.finish(ended)
        for key in ended:
            del started[key]
        keys = sim.dispatch(sim.plan(cluster).picks)
        sim.start(keys)
        started.update(dict.fromkeys(keys, step))
        if step >= steps // 5:
            for name, (cpu, memory) in shapes.items():
                shares[name] += sim.inflight(name) * fairness.dominant(cpu, memory, 0, total)
        sim.tick(10)
    whole = sum(shares.values())
    return {name: share / whole for name, share in shares.items()}


@pytest.mark.parametrize(
    ("weights", "shapes"),
    [
        ({"a": 1, "b": 2, "c": 3}, dict.fromkeys("abc", (1000, 256))),
        ({"a": 1, "b": 1}, dict.fromkeys("ab", (1000, 256))),
        ({"a": 1, "b": 4}, dict.fromkeys("ab", (1000, 256))),
        ({"a": 3, "b": 1, "c": 1}, dict.fromkeys("abc", (2000, 512))),
        # Dominant resources differ: a is cpu-bound, b memory-bound; their dominant shares follow the weights.
        ({"a": 1, "b": 2}, {"a": (4000, 256), "b": (500, 4096)}),
    ],
)
def test_running_shares_follow_the_weights_over_a_long_run(
    weights: dict[str, float], shapes: dict[str, tuple[int, int]]
) -> None:
    shares = run_shares(weights, shapes, steps=300, slots=60)
    whole = sum(weights.values())
    for name, weight in weights.items():
        assert shares[name] == pytest.approx(weight / whole, rel=0.05), shares


# --- replay = live ---------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(limits=tenants, pool_map=pools(), seed=st.integers(0, 2**32), steps=st.integers(1, 20))
def test_a_state_replayed_from_the_log_plans_exactly_like_the_live_one(
    limits: dict[str, tuple[float, int]], pool_map: dict[str, Pool], seed: int, steps: int
) -> None:
    sim = configured_sim(limits)
    churn(sim, random.Random(seed), steps, pool_map, list(limits))
    replayed = sim.replay()
    assert dump_jobs(replayed) == dump_jobs(sim.state)
    assert dump_tenants(replayed) == dump_tenants(sim.state)
    live = sim.plan(pool_map)
    assert plan_of(fairness.plan(replayed, pool_map, sim.now)) == plan_of(live)


@settings(max_examples=25, deadline=None)
@given(limits=tenants, pool_map=pools(), seed=st.integers(0, 2**32), steps=st.integers(1, 6))
def test_a_round_that_orders_only_as_deep_as_it_can_look_picks_exactly_what_the_whole_order_picks(
    limits: dict[str, tuple[float, int]], pool_map: dict[str, Pool], seed: int, steps: int
) -> None:
    """Deep backlogs (each tenant's queue longer than the free slots plus LOOKAHEAD several times over, jobs of
    every shape, priority, pool and backoff): the dispatch round's plan (`waiting=False`, each queue ordered only
    `free + LOOKAHEAD` deep) picks the same jobs, in the same order, onto the same pools, with the same records."""
    sim = configured_sim(limits)
    rng = random.Random(seed)
    churn(sim, rng, steps, pool_map, list(limits))
    depth = sum(sim.plan(pool_map).round_free.values()) + LOOKAHEAD  # how deep the round may look
    for tenant in limits:
        for _ in range(4 * depth + rng.randint(1, 50)):  # past what `_order` orders in full
            sim.submit(tenant, job=random_job(rng))
    full, shortened = fairness.plan(sim.state, pool_map, sim.now), fairness.plan(sim.state, pool_map, sim.now,
                                                                                  waiting=False)
    assert shortened.picks == full.picks
    assert shortened.round_free == full.round_free


# --- reasons ---------------------------------------------------------------------------------------------------------


def check_reasons(sim: Sim, plan: Plan, pool_map: dict[str, Pool]) -> None:
    """Every queued job is either picked or waits with a reason, and the reason is true."""
    queued = {(v.tenant, v.id): v for v in sim.jobs(states=("queued",))}
    picks = set(picked(plan))
    assert picks.isdisjoint(plan.waiting)
    assert picks | set(plan.waiting) == set(queued)
    free = placement.free_slots(pool_map, Counter(v.pool for v in sim.jobs()))
    for pick in plan.picks:
        free[pick.pool] -= 1
    ahead = Counter[str]()
    for key, view in sorted(queued.items(), key=lambda kv: fairness.queue_order(kv[1])):
        ahead[view.tenant] += 1
        if key in picks:
            continue
        reason, _ = plan.waiting[key]
        fits = placement.candidates(need_of(view), pool_map)
        rec = sim.state.tenant(view.tenant)
        if reason == "tenant_at_max_inflight":
            assert sim.inflight(view.tenant) + len(picked(plan, view.tenant)) >= rec.limits.max_inflight
        elif reason == "backoff":
            assert view.reason == "backoff" and (view.not_before is None or view.not_before > sim.now)
        elif reason == "no_worker_fits":
            assert fits == []
        elif ahead[view.tenant] <= LOOKAHEAD:
            assert reason == "pool_full" and fits and all(free[p.name] == 0 for p in fits), (key, reason)


@settings(max_examples=100, deadline=None)
@given(limits=tenants, pool_map=pools(), seed=st.integers(0, 2**32), steps=st.integers(1, 20))
def test_every_queued_job_that_is_not_picked_says_truly_why_it_waits(
    limits: dict[str, tuple[float, int]], pool_map: dict[str, Pool], seed: int, steps: int
) -> None:
    sim = configured_sim(limits)
    churn(sim, random.Random(seed), steps, pool_map, list(limits), check=lambda s, p: check_reasons(s, p, pool_map))


# --- capacity --------------------------------------------------------------------------------------------------------


def test_a_draining_workers_running_jobs_do_not_take_the_free_slots_of_the_pools_other_workers() -> None:
    """w1 drains while it finishes two jobs; w2 of the same pool has both its slots free, so a queued job starts."""
    sim = Sim()
    sim.submit_many("a", 2)
    both = placement.pools_from([heartbeat("w1", slots=2), heartbeat("w2", slots=2)])
    sim.start(sim.dispatch(sim.plan(both).picks), worker_id="w1")
    assert sim.in_pool("default") == 2
    waiting = sim.submit("b")
    draining = placement.pools_from([heartbeat("w1", slots=2, draining=True, free=0), heartbeat("w2", slots=2)])
    plan = sim.plan(draining)
    assert picked(plan) == [waiting], f"the job waits: {plan.waiting.get(waiting)}"
