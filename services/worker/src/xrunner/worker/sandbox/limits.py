"""What one job may use (memory, processes, cpu share, cpu time), and the rlimits that stand in for cgroups."""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from xrunner.contracts.spec import JobSpec

MIB = 1024 * 1024
CFS_PERIOD_US = 100_000
RLimits = dict[int, tuple[int, int]]


@dataclass(frozen=True)
class Limits:
    """One attempt's limits, from its spec and the worker's settings."""

    memory_bytes: int
    max_pids: int
    cpu_millis: int
    cpu_seconds: int

    @classmethod
    def of(cls, spec: JobSpec, max_pids: int) -> Limits:
        """CPU time is the wall clock times the cores the job asked for (at least one), so a job that keeps its
        share never hits it before the runner's own deadline."""
        cores = max(1.0, spec.resources.cpu_millis / 1000)
        return cls(
            memory_bytes=spec.resources.memory_mib * MIB,
            max_pids=max_pids,
            cpu_millis=spec.resources.cpu_millis,
            cpu_seconds=max(1, math.ceil(spec.timeout_s * cores)),
        )

    def cfs_quota_us(self) -> int:
        """The cfs quota per `CFS_PERIOD_US` that gives `cpu_millis` (the kernel's minimum is 1 ms)."""
        return max(1000, self.cpu_millis * CFS_PERIOD_US // 1000)


def rlimits(limits: Limits, *, memory: bool, pids: bool) -> RLimits:
    """The rlimits a job gets: always CPU time (SIGXCPU, then SIGKILL a second later); memory and process
    count only when `memory`/`pids` say no cgroup enforces them."""
    out: RLimits = {resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 1)}
    if memory:
        out[resource.RLIMIT_AS] = (limits.memory_bytes, limits.memory_bytes)
        out[resource.RLIMIT_DATA] = (limits.memory_bytes, limits.memory_bytes)
    if pids:
        out[resource.RLIMIT_NPROC] = (limits.max_pids, limits.max_pids)
    return out


def apply_to(pid: int, limits: RLimits) -> None:
    """Set `limits` on another (not yet running) process; pid 0 is this process."""
    for which, value in limits.items():
        resource.prlimit(pid, which, value)
