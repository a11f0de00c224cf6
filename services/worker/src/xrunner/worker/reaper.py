"""The worker's reaper and watchdog: a small process beside the worker that kills the worker's jobs when the worker
dies, and when the worker stops renewing its lease (self-fencing).

A worker killed with SIGKILL cannot stop its jobs, and bubblewrap's `--die-with-parent` does not always take a
sandbox down with it (the parent-death signal is tied to a thread and cleared by credential changes). So each
worker starts one reaper in a session of its own, holding the write end of a pipe the reaper reads: when the worker
dies, however it dies, the pipe reaches EOF and the reaper kills every process in the worker's job cgroups and every
container labelled with its id, then exits. A file lock keeps a restarted worker's start and an old reaper's
cleanup from overlapping.

The same pipe carries the lease: after each heartbeat the KV bucket stored, the worker writes the heartbeat's send
time (`time.monotonic()`, one clock for the host). A worker that is frozen (SIGSTOP, a stalled VM) or cut off from
NATS writes nothing; once `fence_after_s` (lease - margin) has passed since the last send time, the reaper counts a
fence (`lease.count_fence`) and SIGKILLs every process in the worker's job cgroups and every running container of
the worker, before the scheduler, which waits lease + margin, can declare those attempts lost and run them again.
A renewal that arrives later than `fence_after_s` after it was sent does not count: the jobs may be gone already.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from xrunner.worker.lease import count_fence, fence_marker
from xrunner.worker.sandbox.process.cgroups import CgroupV1

log = structlog.get_logger()

CLEAN = b"clean\n"  # the worker's last line at a clean stop
Cleanup = Callable[[str], int]  # kills what a worker id left behind; returns how many jobs it found
Kill = Callable[[str], int]  # SIGKILLs a worker id's running jobs (a fence); returns how many it found


@contextlib.contextmanager
def exclusive(lock_dir: Path, worker_id: str) -> Iterator[None]:
    """Held by a reaper while it cleans up and by a worker while it starts under `worker_id`."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f".reaper-{worker_id}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Reaper:
    """The worker's side: start the reaper; `renewed(sent_at)` after each stored heartbeat; `stop()` at a clean stop
    (it then only checks and exits). With `docker_url`, it also kills and removes the worker's containers."""

    def __init__(self, worker_id: str, lock_dir: Path, fence_after_s: float, docker_url: str | None = None) -> None:
        argv = [sys.executable, "-m", "xrunner.worker.reaper", worker_id, str(lock_dir), repr(fence_after_s)]
        read, self._write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                argv + ([docker_url] if docker_url else []),
                stdin=read,
                start_new_session=True,  # out of the worker's process group: a group kill must not take it too
                close_fds=True,
            )
        finally:
            os.close(read)
        # os.pipe() fds are not inheritable: no job holds the write end open after the worker died.
        os.set_blocking(self._write, False)  # a stuck reaper must not stop the worker's event loop
        self.gone = False

    def renewed(self, sent_at: float) -> None:
        """Tell the watchdog a heartbeat sent at `sent_at` was stored (a line is shorter than PIPE_BUF: atomic)."""
        try:
            os.write(self._write, f"{sent_at!r}\n".encode())
        except BlockingIOError:  # the reaper is behind; the next renewal tells it the same
            pass
        except OSError as exc:
            if not self.gone:
                log.error("the reaper is gone: nothing fences this worker's jobs any more", error=repr(exc))
            self.gone = True

    def stop(self, clean: bool) -> None:
        """`clean`: the worker stopped every job it ran, so the reaper exits without looking for leftovers (a
        stop then costs no docker client and no container listing); else it cleans up as after a crash."""
        with contextlib.suppress(OSError):
            if clean:
                os.write(self._write, CLEAN)
            os.close(self._write)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def cleanup_cgroups(worker_id: str) -> int:
    cgroups = CgroupV1(worker_id)
    killed = cgroups.cleanup_stale()
    cgroups.release()
    return killed


def cleanup_containers(docker_url: str) -> Cleanup:
    def containers(worker_id: str) -> int:
        from xrunner.worker.sandbox.docker.sandbox import (
            remove_left_containers,  # only a docker worker's reaper needs it
        )

        return remove_left_containers(docker_url, worker_id)

    return containers


def kill_cgroups(worker_id: str) -> int:
    return CgroupV1(worker_id).signal_all(signal.SIGKILL)


def kill_containers(docker_url: str) -> Kill:
    def containers(worker_id: str) -> int:
        from xrunner.worker.sandbox.docker.sandbox import kill_running_containers

        return kill_running_containers(docker_url, worker_id)

    return containers


@dataclass
class Watch:
    """When the lease lapses: `fence_after_s` after the latest renewal's send time, once per lapse."""

    fence_after_s: float
    renewed_at: float
    fenced: bool = False

    def renewed(self, sent_at: float, now: float) -> None:
        if sent_at > self.renewed_at and now - sent_at < self.fence_after_s:  # late: the fence may have struck
            self.renewed_at, self.fenced = sent_at, False

    def wait_s(self, now: float) -> float | None:
        """How long until the fence is due (None: fenced already, only a renewal changes anything)."""
        return None if self.fenced else max(0.0, self.renewed_at + self.fence_after_s - now)


def renewals(pending: bytes, chunk: bytes) -> tuple[list[float], bytes]:
    """The send times in the complete lines of `pending + chunk` (not the clean-stop line), and what is left of an
    incomplete line."""
    *lines, rest = (pending + chunk).split(b"\n")
    return [float(line) for line in lines if line and line != CLEAN.strip()], rest


def watch(worker_id: str, lock_dir: Path, lapse: Watch, kills: list[Kill]) -> bool:
    """Follow the renewals on stdin until EOF (the worker is gone), fencing whenever the lease lapses. True when
    the worker's last line said it stopped cleanly."""
    pending, clean = b"", False
    while True:
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], lapse.wait_s(time.monotonic()))
        if ready:
            chunk = os.read(sys.stdin.fileno(), 65_536)
            if not chunk:
                return clean
            clean = (pending + chunk).endswith(CLEAN)
            sent, pending = renewals(pending, chunk)
            for sent_at in sent:
                lapse.renewed(sent_at, time.monotonic())
        if lapse.wait_s(time.monotonic()) == 0.0:
            fence(worker_id, lock_dir, lapse, kills)


def fence(worker_id: str, lock_dir: Path, lapse: Watch, kills: list[Kill]) -> None:
    """Count the fence first (an attempt that sees the count move appends nothing), then kill."""
    lapse.fenced = True
    silent_s = round(time.monotonic() - lapse.renewed_at, 3)
    count = count_fence(fence_marker(lock_dir, worker_id))
    found = {kill.__name__: kill(worker_id) for kill in kills}
    log.warning("the worker's lease lapsed: its jobs were killed", worker_id=worker_id, fence=count,
                silent_s=silent_s, took_s=round(time.monotonic() - lapse.renewed_at - silent_s, 3), **found)


def reap(worker_id: str, lock_dir: Path, cleanups: list[Cleanup]) -> None:
    """Once the worker is gone (EOF on stdin), clean up after it."""
    with exclusive(lock_dir, worker_id):
        found = {cleanup.__name__: cleanup(worker_id) for cleanup in cleanups}
    if any(found.values()):
        log.warning("reaped what a dead worker left", worker_id=worker_id, **found)


def main(worker_id: str, lock_dir: Path, fence_after_s: float, docker_urls: list[str]) -> None:
    lapse = Watch(fence_after_s, renewed_at=time.monotonic())
    if watch(worker_id, lock_dir, lapse, [kill_cgroups, *(kill_containers(url) for url in docker_urls)]):
        return
    reap(worker_id, lock_dir, [cleanup_cgroups, *(cleanup_containers(url) for url in docker_urls)])


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
