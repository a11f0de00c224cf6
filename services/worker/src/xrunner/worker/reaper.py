"""The worker's reaper: a small process that outlives the worker just long enough to kill what its jobs left.

A worker killed with SIGKILL cannot stop its jobs, and bubblewrap's `--die-with-parent` does not always take a
sandbox down with it (the parent-death signal is tied to a thread and cleared by credential changes). So each
worker starts one reaper in a session of its own, holding the write end of a pipe the reaper reads: when the worker
dies, however it dies, the pipe reaches EOF and the reaper kills every process in the worker's job cgroups and every
container labelled with its id, then exits. A file lock keeps a restarted worker's start and an old reaper's
cleanup from overlapping.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from xrunner.worker.sandbox.process.cgroups import CgroupV1

log = structlog.get_logger()

Cleanup = Callable[[str], int]  # kills what a worker id left behind; returns how many jobs it found


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
    """The worker's side: start the reaper; `stop()` at a clean stop (it then only checks and exits). With
    `docker_url`, it also removes the worker's containers."""

    def __init__(self, worker_id: str, lock_dir: Path, docker_url: str | None = None) -> None:
        argv = [sys.executable, "-m", "xrunner.worker.reaper", worker_id, str(lock_dir)]
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

    def stop(self) -> None:
        with contextlib.suppress(OSError):
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


def reap(worker_id: str, lock_dir: Path, cleanups: list[Cleanup]) -> None:
    """Wait for the worker to go (EOF on stdin), then clean up after it."""
    while sys.stdin.buffer.read(65_536):
        pass
    with exclusive(lock_dir, worker_id):
        found = {cleanup.__name__: cleanup(worker_id) for cleanup in cleanups}
    if any(found.values()):
        log.warning("reaped what a dead worker left", worker_id=worker_id, **found)


if __name__ == "__main__":
    reap(sys.argv[1], Path(sys.argv[2]), [cleanup_cgroups, *(cleanup_containers(url) for url in sys.argv[3:])])
