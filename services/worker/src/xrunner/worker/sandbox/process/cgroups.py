"""Per-job cgroups (v1): create them with the job's limits, signal every process in them, and remove them.

A removed job's emptied directories are kept for the next job (renamed `idle.<n>`, limits rewritten only where
they differ): creating and removing a memory cgroup costs the kernel far more than two renames. Idle directories
stay under the worker's own, so whatever kills or cleans up the worker's cgroups (the reaper, a restart) covers
them too."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from xrunner.worker.sandbox.limits import CFS_PERIOD_US, Limits

CONTROLLERS = ("pids", "memory", "cpu")
ROOT = Path("/sys/fs/cgroup")
IDLE = "idle."  # no job id has a dot, and no idle name ends like a job's `-<attempt>`
MAX_IDLE = 256  # emptied job cgroups kept for reuse; beyond that they are removed


class JobCgroup:
    """One attempt's directories, one per controller; every process of the job lives in all of them. `recycle`,
    when given, takes the emptied directories at `remove` (to keep them for another job) instead of rmdir."""

    def __init__(self, dirs: dict[str, Path], recycle: Callable[[JobCgroup], bool] | None = None) -> None:
        self.dirs = dirs
        self.removed = False
        self.recycle = recycle
        self.limits: tuple[int, int, int] | None = None  # what was last written to its limit files

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def add(self, pid: int) -> None:
        for path in self.procs_files:
            with open(path, "w") as f:
                f.write(str(pid))

    def set_limits(self, limits: Limits) -> None:
        written = (limits.memory_bytes, limits.max_pids, limits.cpu_millis)
        if written != self.limits:
            self.limits = None  # unknown until every file is written
            _set_limits(self.dirs, limits)
            self.limits = written

    def assign(self, job_id: str, attempt: int, limits: Limits) -> None:
        """Take a spare (a warm shell's, already holding its process) for an attempt: its name and its limits."""
        self.rename(job_name(job_id, attempt))
        self.set_limits(limits)

    def idle_name(self) -> bool:
        return any(d.name.startswith(IDLE) for d in self.dirs.values())

    def rename(self, name: str) -> None:
        """Move every directory to `name` (same parent): the job's processes, if any, stay in it."""
        renamed = {c: d.with_name(name) for c, d in self.dirs.items()}
        for c, d in self.dirs.items():
            d.rename(renamed[c])
            self.dirs[c] = renamed[c]

    def pids(self) -> set[int]:
        """Every process in the job: the union over controllers, so a half-joined process is not missed."""
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def signal(self, sig: int, spare: frozenset[int] = frozenset()) -> None:
        """Send `sig` to every process, again and again while new ones appear (a fork in flight when we read
        the list), so after a SIGKILL nothing in the job can still fork."""
        seen: set[int] = set(spare)
        for _ in range(1000):
            fresh = self.pids() - seen
            if not fresh:
                return
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            seen |= fresh

    async def remove(self, deadline_s: float = 5.0) -> None:
        """Kill what is left and wait until it is gone, then hand the directories to `recycle` or remove them
        (rmdir is EBUSY until then)."""
        if self.removed:
            return
        until = time.monotonic() + deadline_s
        while self.pids() and time.monotonic() < until:
            self.signal(signal.SIGKILL)
            await asyncio.sleep(0.005)
        if not self.pids() and self.recycle is not None and self.recycle(self):
            self.removed = True
            return
        while not _rmdir_all(self.dirs.values()) and time.monotonic() < until:
            await asyncio.sleep(0.01)
        self.removed = True


class CgroupV1:
    """This worker's cgroups, `<controller>/xrunner/<worker_id>/<job>-<attempt>`, on the controllers that are
    mounted and writable here (none on a non-root or cgroup-less host)."""

    def __init__(self, worker_id: str, root: Path = ROOT) -> None:
        self.worker = Path("xrunner") / _safe(worker_id)
        self.controllers = tuple(c for c in CONTROLLERS if _writable(root / c, self.worker))
        self.base = {c: root / c / self.worker for c in self.controllers}
        self.idle: list[JobCgroup] = []
        self._named = itertools.count()

    def create(self, job_id: str, attempt: int, limits: Limits) -> JobCgroup | None:
        if not self.controllers:
            return None
        group = self._named_group(job_name(job_id, attempt))
        try:
            group.set_limits(limits)
        except OSError:
            _rmdir_all(group.dirs.values())  # nothing has joined yet
            raise
        return group

    def spare(self) -> JobCgroup | None:
        """A job cgroup under an idle name for a process started ahead of its job (a warm shell): moving a process
        into a cgroup is what costs (the kernel waits out an RCU grace period per move on v1), so it is paid before
        the job exists. It keeps the limits it had until `assign`. None where there are no controllers."""
        if not self.controllers:
            return None
        if self.idle:  # already under an idle name: taken as it is
            group = self.idle.pop()
            group.removed = False
            return group
        return self._named_group(f"{IDLE}{next(self._named)}")

    def _named_group(self, name: str) -> JobCgroup:
        """An idle job cgroup renamed to `name`, else a new one."""
        group = self._reused(name)
        if group is None:
            group = JobCgroup({c: base / name for c, base in self.base.items()}, self._recycle)
            for d in group.dirs.values():
                d.mkdir(exist_ok=True)
        return group

    def _reused(self, name: str) -> JobCgroup | None:
        """An idle job cgroup renamed to `name`, or None (none idle, or the rename failed: it is dropped)."""
        while self.idle:
            group = self.idle.pop()
            try:
                group.rename(name)
            except OSError:
                _rmdir_all(group.dirs.values())
                continue
            group.removed = False
            return group
        return None

    def _recycle(self, group: JobCgroup) -> bool:
        """Keep an emptied job cgroup for reuse under an idle name; False when it is not kept."""
        if len(self.idle) >= MAX_IDLE:
            return False
        try:
            group.rename(f"{IDLE}{next(self._named)}")
        except OSError:
            return False
        self.idle.append(group)
        return True

    def jobs(self) -> list[JobCgroup]:
        """Every job cgroup of this worker now, each with the controllers it has."""
        names = {d.name for base in self.base.values() if base.is_dir() for d in base.iterdir() if d.is_dir()}
        return [JobCgroup({c: base / name for c, base in self.base.items() if (base / name).is_dir()})
                for name in sorted(names)]

    def signal_all(self, sig: int) -> int:
        """Send `sig` to every process of every job of this worker, leaving the directories to the worker (the
        reaper's fence); returns how many jobs had processes."""
        groups = [group for group in self.jobs() if group.pids()]
        for group in groups:
            group.signal(sig)
        return len(groups)

    def cleanup_stale(self) -> int:
        """Kill and remove the job cgroups a previous life of this worker left behind; returns how many."""
        stale = self.jobs()
        for group in stale:
            until = time.monotonic() + 5.0
            while (group.pids() or not _rmdir_all(group.dirs.values())) and time.monotonic() < until:
                group.signal(signal.SIGKILL)
                time.sleep(0.01)
        return sum(1 for group in stale if not group.idle_name())

    def release(self) -> None:
        """At a clean stop: remove this worker's (by now empty) cgroup directories, idle ones first."""
        for group in self.idle:
            _rmdir_all(group.dirs.values())
        self.idle.clear()
        _rmdir_all(self.base.values())


def job_name(job_id: str, attempt: int) -> str:
    return f"{_safe(job_id)}-{attempt}"


def _set_limits(dirs: dict[str, Path], limits: Limits) -> None:
    if "pids" in dirs:
        (dirs["pids"] / "pids.max").write_text(str(limits.max_pids))
    if "memory" in dirs:
        _set_memory(dirs["memory"], limits.memory_bytes)
    if "cpu" in dirs:
        (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(limits.cfs_quota_us()))


def _set_memory(group: Path, limit: int) -> None:
    """The memory limit, and the same for memory + swap where swap is accounted (without it swap could hold what
    RAM may not). The kernel keeps memory ≤ memory + swap at every step, so a raised limit goes to memsw first."""
    files = [group / "memory.limit_in_bytes", group / "memory.memsw.limit_in_bytes"]
    if not files[1].exists():
        files.pop()
    elif limit > int(files[0].read_text()):
        files.reverse()
    for f in files:
        f.write_text(str(limit))


def _writable(controller: Path, worker: Path) -> bool:
    """A controller is usable if it is a v1 hierarchy of its own and we may make our directory in it."""
    if not (controller / "cgroup.procs").exists() or (controller / "cgroup.controllers").exists():
        return False
    try:
        (controller / worker).mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(controller / worker, os.W_OK)


def _rmdir_all(dirs: Iterable[Path]) -> bool:
    done = True
    for d in dirs:
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            done = False
    return done


def _safe(name: str) -> str:
    """A path component from an id: anything but [A-Za-z0-9_.-] becomes '_', and never '.' or '..'."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
    return "_" if cleaned in (".", "..") else cleaned
