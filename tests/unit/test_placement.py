"""Placement: pools from worker heartbeats, which pools fit a job (smallest first, GPU pools kept for GPU jobs), and
whether a pool has a free slot now. Table-driven."""

from __future__ import annotations

import pytest
from simulate import heartbeat, pool

from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.scheduler import placement
from xrunner.scheduler.placement import Need, Pool

CPU_SMALL = pool("default", workers=2, slots=8, cpu=2000, memory=4096)
CPU_BIG = pool("highmem", workers=1, slots=2, cpu=16000, memory=65536)
GPU_ONE = pool("gpu", workers=1, slots=2, cpu=32000, memory=131072, gpu=1)
GPU_FOUR = pool("gpu4", workers=1, slots=1, cpu=64000, memory=262144, gpu=4)
ALL = {p.name: p for p in (CPU_SMALL, CPU_BIG, GPU_ONE, GPU_FOUR)}
CPU_ONLY = {p.name: p for p in (CPU_SMALL, CPU_BIG)}


def free_everywhere(pools: dict[str, Pool]) -> dict[str, int]:
    return {name: p.slots for name, p in pools.items()}


def need(cpu: int = 1000, memory: int = 256, gpu: int = 0, hint: str | None = None) -> Need:
    return Need(cpu, memory, gpu, hint)


# --- choosing a pool -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "pools", "free", "expected"),
    [
        # A GPU job never goes to a CPU-only pool.
        (need(gpu=1), CPU_ONLY, free_everywhere(CPU_ONLY), (None, "no_worker_fits")),
        (need(gpu=1), ALL, free_everywhere(ALL), ("gpu", "")),
        (need(gpu=2), ALL, free_everywhere(ALL), ("gpu4", "")),
        (need(gpu=8), ALL, free_everywhere(ALL), (None, "no_worker_fits")),
        (need(gpu=1), ALL, {**free_everywhere(ALL), "gpu": 0}, ("gpu4", "")),
        (need(gpu=1), ALL, {**free_everywhere(ALL), "gpu": 0, "gpu4": 0}, (None, "pool_full")),
        # A CPU job takes the smallest CPU pool that fits and has room, never a GPU pool while a CPU pool fits.
        (need(), ALL, free_everywhere(ALL), ("default", "")),
        (need(cpu=4000), ALL, free_everywhere(ALL), ("highmem", "")),
        (need(memory=8192), ALL, free_everywhere(ALL), ("highmem", "")),
        (need(), ALL, {**free_everywhere(ALL), "default": 0}, ("highmem", "")),
        (need(), ALL, {**free_everywhere(ALL), "default": 0, "highmem": 0}, (None, "pool_full")),
        (need(cpu=4000), ALL, {**free_everywhere(ALL), "highmem": 0}, (None, "pool_full")),
        # Only a GPU pool is large enough: then a CPU job may use it.
        (need(cpu=20000), ALL, free_everywhere(ALL), ("gpu", "")),
        (need(cpu=48000), ALL, free_everywhere(ALL), ("gpu4", "")),
        (need(cpu=128000), ALL, free_everywhere(ALL), (None, "no_worker_fits")),
        # An explicit pool hint is honoured, or the job fits nowhere; it never spills into another pool.
        (need(hint="gpu"), ALL, free_everywhere(ALL), ("gpu", "")),
        (need(hint="highmem"), ALL, free_everywhere(ALL), ("highmem", "")),
        (need(hint="highmem"), ALL, {**free_everywhere(ALL), "highmem": 0}, (None, "pool_full")),
        (need(hint="default", cpu=4000), ALL, free_everywhere(ALL), (None, "no_worker_fits")),
        (need(hint="default", gpu=1), ALL, free_everywhere(ALL), (None, "no_worker_fits")),
        (need(hint="nowhere"), ALL, free_everywhere(ALL), (None, "no_worker_fits")),
        # No live worker at all.
        (need(), {}, {}, (None, "no_worker_fits")),
        # A pool missing from the free map has no free slot.
        (need(), CPU_ONLY, {}, (None, "pool_full")),
    ],
)
def test_a_job_goes_to_the_smallest_pool_that_fits_and_has_room_or_says_why_not(
    job: Need, pools: dict[str, Pool], free: dict[str, int], expected: tuple[str | None, str]
) -> None:
    assert placement.choose(job, pools, free) == expected


def test_candidates_list_the_fitting_pools_smallest_first() -> None:
    assert [p.name for p in placement.candidates(need(gpu=1), ALL)] == ["gpu", "gpu4"]
    assert [p.name for p in placement.candidates(need(), ALL)] == ["default", "highmem"]
    assert [p.name for p in placement.candidates(need(cpu=20000), ALL)] == ["gpu", "gpu4"]


def test_a_job_exactly_the_size_of_a_pool_fits_it() -> None:
    exact = need(cpu=CPU_SMALL.cpu_millis, memory=CPU_SMALL.memory_mib)
    assert placement.choose(exact, ALL, free_everywhere(ALL)) == ("default", "")


def test_a_gpu_job_waits_no_worker_fits_when_only_cpu_workers_live() -> None:
    pools = placement.pools_from([heartbeat("w1", cpu=64000, memory=262144), heartbeat("w2", pool="highmem")])
    assert placement.choose(need(gpu=1), pools, free_everywhere(pools)) == (None, "no_worker_fits")


def test_a_docker_job_goes_only_to_a_pool_whose_every_worker_runs_docker() -> None:
    both = ("docker", "process")
    pools = placement.pools_from(
        [
            heartbeat("w1"),
            heartbeat("w2", pool="mixed", workloads=both),
            heartbeat("w3", pool="mixed"),
            heartbeat("w4", pool="containers", cpu=8000, workloads=both),
        ]
    )
    docker = Need(1000, 256, 0, workload="docker")
    assert pools["mixed"].workloads == {"process"}
    assert placement.choose(docker, pools, free_everywhere(pools)) == ("containers", "")
    assert placement.choose(docker, pools, {**free_everywhere(pools), "containers": 0}) == (None, "pool_full")
    assert placement.choose(need(), pools, free_everywhere(pools)) == ("default", "")
    only_process = placement.pools_from([heartbeat("w1"), heartbeat("w2", pool="mixed", workloads=both),
                                         heartbeat("w3", pool="mixed")])
    assert placement.choose(docker, only_process, free_everywhere(only_process)) == (None, "no_worker_fits")


# --- pools from heartbeats -------------------------------------------------------------------------------------------


def test_a_pools_shape_is_its_smallest_worker_and_its_slots_add_up() -> None:
    pools = placement.pools_from(
        [
            heartbeat("w1", slots=4, cpu=8000, memory=2048, gpu=2, pool="gpu"),
            heartbeat("w2", slots=2, cpu=2000, memory=16384, gpu=1, pool="gpu"),
            heartbeat("w3", slots=3, cpu=4000, memory=4096),
        ]
    )
    assert pools == {
        "gpu": Pool("gpu", workers=2, slots=6, cpu_millis=2000, memory_mib=2048, gpu=1),
        "default": Pool("default", workers=1, slots=3, cpu_millis=4000, memory_mib=4096, gpu=0),
    }


def test_a_job_that_fits_only_the_larger_worker_of_a_pool_does_not_fit_the_pool() -> None:
    pools = placement.pools_from([heartbeat("w1", cpu=8000), heartbeat("w2", cpu=2000)])
    assert placement.choose(need(cpu=4000), pools, free_everywhere(pools)) == (None, "no_worker_fits")


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ([heartbeat("w1", draining=True)], {}),
        (
            [heartbeat("w1", slots=4, cpu=1000, draining=True), heartbeat("w2", slots=2, cpu=8000)],
            {"default": Pool("default", workers=1, slots=2, cpu_millis=8000, memory_mib=8192, gpu=0)},
        ),
        (
            [heartbeat("w1", pool="gpu", gpu=1, draining=True), heartbeat("w2")],
            {"default": Pool("default", workers=1, slots=4, cpu_millis=4000, memory_mib=8192, gpu=0)},
        ),
    ],
)
def test_draining_workers_count_neither_for_slots_nor_for_shape(
    workers: list[WorkerHeartbeat], expected: dict[str, Pool]
) -> None:
    assert placement.pools_from(workers) == expected


def test_a_gpu_job_waits_no_worker_fits_when_the_only_gpu_worker_drains() -> None:
    pools = placement.pools_from([heartbeat("w1", pool="gpu", gpu=1, draining=True), heartbeat("w2")])
    assert placement.choose(need(gpu=1), pools, free_everywhere(pools)) == (None, "no_worker_fits")


# --- free slots ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "expected"),
    [
        ({}, {"default": 8, "highmem": 2}),
        ({"default": 3}, {"default": 5, "highmem": 2}),
        ({"default": 8, "highmem": 1}, {"default": 0, "highmem": 1}),
        # More active than slots (workers went away): no free slot, never a negative count.
        ({"default": 11, "highmem": 5}, {"default": 0, "highmem": 0}),
        # Jobs in a pool that has no live worker do not matter.
        ({"gone": 7}, {"default": 8, "highmem": 2}),
    ],
)
def test_free_slots_are_the_pools_slots_minus_its_active_jobs(active: dict[str, int], expected: dict[str, int]) -> None:
    assert placement.free_slots(CPU_ONLY, active) == expected


def test_a_pool_with_no_free_slot_makes_a_fitting_job_wait_pool_full() -> None:
    pools = placement.pools_from([heartbeat("w1", slots=2)])
    free = placement.free_slots(pools, {"default": 2})
    assert placement.choose(need(), pools, free) == (None, "pool_full")
