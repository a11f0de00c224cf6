"""Decisions with their inputs, and the scheduler's replay: every dispatch records why (its tenant's standing, the
competing tenants, how placement saw every pool); replaying the recorded rounds of a generated history reproduces
every dispatch; a tampered record is caught; an override changes what the model predicts, and none changes
nothing."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulate import WIDE_OPEN, Sim, churn, pool

from xrunner.contracts import events as ev
from xrunner.contracts.decisions import DispatchWhy
from xrunner.scheduler.replay import verify
from xrunner.scheduler.whatif import BadOverride, Overrides, parse_overrides, record, what_if

POOLS = {"default": pool(slots=6), "gpu": pool("gpu", gpu=2), "highmem": pool("highmem", memory=65536, slots=2)}


def dispatches(sim: Sim) -> list[tuple[int, ev.JobDispatched]]:
    return [(seq, e) for seq, e in sim.log if isinstance(e, ev.JobDispatched)]


def why_of(event: ev.JobDispatched) -> DispatchWhy:
    assert event.why is not None
    return event.why


# --- decisions with their inputs -------------------------------------------------------------------------------------


def test_a_dispatch_records_its_tenants_standing_and_the_tenants_that_compete_with_it() -> None:
    sim = Sim()
    sim.configure("heavy", weight=1.0)
    sim.configure("light", weight=3.0)
    sim.submit_many("heavy", 3)
    sim.submit_many("light", 3)
    sim.dispatch(sim.plan({"default": pool(slots=2)}).picks)
    first, second = (why_of(e) for _, e in dispatches(sim))
    assert (first.rank, second.rank, first.picks, first.basis) == (1, 2, 2, sim.projected)
    assert {first.tenant.tenant, second.tenant.tenant} == {"heavy", "light"}  # nothing in flight: each once
    assert first.tenant.idle and first.tenant.inflight == 0 and first.tenant.queued == 3
    assert [c.tenant for c in first.competing] == [second.tenant.tenant]
    assert first.competing[0].weight == (3.0 if second.tenant.tenant == "light" else 1.0)
    assert second.competing[0].tenant == first.tenant.tenant and not second.competing[0].idle
    assert second.competing[0].running_share == pytest.approx(0.25)  # 1000 of 4000 cpu millis


def test_placement_says_which_pools_were_filtered_by_a_constraint_and_which_exhausted_in_what() -> None:
    sim = Sim()
    key = sim.submit("acme", cpu=8000, memory=256)
    pools = {"default": pool(slots=4, cpu=4000), "big": pool("big", slots=1, cpu=16000),
             "gpu": pool("gpu", cpu=32000, gpu=1), "bigger": pool("bigger", slots=1, cpu=16000, memory=16384)}
    sim.submit("acme", cpu=8000, memory=256)
    sim.dispatch(sim.plan(pools).picks)
    (_, first), (_, second) = dispatches(sim)
    assert first.job_id == key[1] and first.pool == "big"
    assert {f.pool: (f.outcome, f.dimension) for f in why_of(first).pools} == {
        "default": ("exhausted", "cpu"), "big": ("chosen", ""), "bigger": ("passed", ""),
        "gpu": ("filtered", "gpu_reserved")}
    assert second.pool == "bigger"
    assert {f.pool: f.outcome for f in why_of(second).pools}["big"] == "exhausted"
    assert (why_of(second).exhausted, why_of(second).filtered) == ({"cpu": 1, "slots": 1}, {"gpu_reserved": 1})
    assert (why_of(second).pools_evaluated, why_of(second).workers_evaluated) == (4, 4)
    assert {f.pool: f.free for f in why_of(second).pools}["big"] == 1  # free slots when the round began


def test_a_backfilled_job_records_its_place_behind_the_jobs_that_could_not_start() -> None:
    sim = Sim()
    sim.submit("acme", pool="nowhere")
    sim.submit("acme", pool="nowhere")
    key = sim.submit("acme")
    sim.dispatch(sim.plan({"default": pool()}).picks)
    [(_, event)] = dispatches(sim)
    assert (event.job_id, why_of(event).queue_position) == (key[1], 3)


def test_a_dispatch_with_its_why_round_trips_through_the_wire_format() -> None:
    sim = Sim()
    sim.submit_many("acme", 2)
    sim.dispatch(sim.plan(POOLS).picks)
    for _, event in dispatches(sim):
        assert msgspec.json.decode(msgspec.json.encode(event), type=ev.JobDispatched) == event


# --- replay = record -------------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None, database=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 25), tenants=st.sampled_from((("a",), ("a", "b", "c"))))
def test_replaying_a_generated_history_without_overrides_reproduces_every_recorded_dispatch(
    seed: int, steps: int, tenants: tuple[str, ...]
) -> None:
    sim = Sim()
    churn(sim, random.Random(seed), steps, POOLS, tenants)
    result = verify(sim.log, WIDE_OPEN)
    assert result.differences == []
    assert (result.decisions, result.lost_appends, result.unexplained) == (len(dispatches(sim)), 0, 0)


def test_a_recorded_dispatch_the_plan_would_not_make_is_a_difference() -> None:
    sim = Sim()
    churn(sim, random.Random(3), 12, POOLS, ("a", "b", "c"))
    seq, event = next((s, e) for s, e in dispatches(sim) if e.pool == "default")
    tampered = [(s, replace_pool(e, "highmem") if s == seq else e) for s, e in sim.log]
    [difference] = verify(tampered, WIDE_OPEN).differences
    assert difference.recorded == ((event.tenant, event.job_id), "highmem")
    assert difference.replayed == ((event.tenant, event.job_id), "default")


def test_a_replay_from_a_sequence_checks_only_the_decisions_after_it() -> None:
    sim = Sim()
    churn(sim, random.Random(5), 15, POOLS, ("a", "b"))
    middle = dispatches(sim)[len(dispatches(sim)) // 2][0]
    result = verify(sim.log, WIDE_OPEN, since=middle)
    assert result.equal and result.decisions == sum(1 for s, _ in dispatches(sim) if s > middle) > 0


def replace_pool(event: ev.Event, pool_name: str) -> ev.Event:
    assert isinstance(event, ev.JobDispatched)
    return msgspec.structs.replace(event, pool=pool_name)


# --- what would have happened ----------------------------------------------------------------------------------------


def contended() -> Sim:
    """Two tenants with ten one-minute jobs each, one slot: they alternate."""
    sim = Sim()
    for tenant in ("a", "b"):
        sim.submit_many(tenant, 10)
    one_slot = {"default": pool(slots=1)}
    for _ in range(40):
        sim.step(one_slot)
        sim.tick(30)
        sim.finish([(v.tenant, v.id) for v in sim.jobs(states=("running",)) if (sim.now - v.started_at).seconds >= 60])
    return sim


def test_without_overrides_the_model_moves_no_job() -> None:
    outcome = what_if(record(contended().log), WIDE_OPEN, Overrides())
    assert (outcome.moved, outcome.unchanged, outcome.jobs) == ([], 20, 20)
    assert outcome.recorded == 20 and outcome.model_matches >= 1


def test_a_heavier_weight_starts_that_tenants_jobs_earlier_and_the_others_later() -> None:
    outcome = what_if(record(contended().log), WIDE_OPEN, parse_overrides(["tenant.b.weight=20"]))
    assert outcome.earlier > 0 and outcome.later > 0
    assert outcome.by_tenant["b"] < 0 < outcome.by_tenant["a"]


def test_more_slots_start_jobs_earlier() -> None:
    outcome = what_if(record(contended().log), WIDE_OPEN, parse_overrides(["pool.default.slots=4"]))
    assert outcome.earlier > 0 and outcome.later == 0


@pytest.mark.parametrize("bad", ["tenant.acme.weight", "tenant.acme.color=red", "pool..slots=2", "tenant.a.weight=x",
                                 "queue.a.weight=1"])
def test_an_override_that_is_not_understood_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(BadOverride) as refused:
        parse_overrides(["tenant.ok.weight=2", bad])
    assert str(refused.value).startswith(repr(bad))


def test_an_override_sets_only_its_tenants_limits() -> None:
    overrides = parse_overrides(["tenant.acme.weight=2", "tenant.acme.max_inflight=3", "pool.gpu.slots=8"])
    assert overrides == Overrides(tenants={"acme": {"weight": 2.0, "max_inflight": 3}}, pools={"gpu": {"slots": 8}})
