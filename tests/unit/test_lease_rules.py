"""Self-fencing's pure parts: when the reaper's watch is due, which renewals count, the worker's view of its lease
and fence count, and the lease numbers each service refuses to start with."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from xrunner.scheduler.settings import SchedulerSettings
from xrunner.worker.lease import Lease, count_fence, fence_marker, read_fences
from xrunner.worker.reaper import Watch, renewals, watch
from xrunner.worker.settings import WorkerSettings


def test_the_fence_is_due_fence_after_the_last_renewal_and_once_per_lapse() -> None:
    watch = Watch(fence_after_s=3.5, renewed_at=100.0)
    assert watch.wait_s(101.0) == pytest.approx(2.5)
    assert watch.wait_s(104.0) == 0.0
    watch.fenced = True
    assert watch.wait_s(110.0) is None, "fenced: nothing is due until a renewal"
    watch.renewed(109.0, now=110.0)
    assert not watch.fenced and watch.wait_s(110.0) == pytest.approx(2.5)


def test_a_renewal_that_arrives_after_its_fence_deadline_does_not_count() -> None:
    watch = Watch(fence_after_s=3.5, renewed_at=100.0, fenced=True)
    watch.renewed(101.0, now=105.0)  # sent before the freeze, acknowledged after: the jobs may be dead already
    assert watch.fenced and watch.renewed_at == 100.0
    watch.renewed(99.0, now=100.5)  # older than what counts already
    assert watch.renewed_at == 100.0


def test_renewals_are_read_line_by_line_across_chunks() -> None:
    sent, rest = renewals(b"", b"1.5\n2.25\n3.")
    assert (sent, rest) == ([1.5, 2.25], b"3.")
    assert renewals(rest, b"75\n") == ([3.75], b"")


def test_a_lease_is_held_while_fresh_and_not_fenced_since_the_attempt_began(tmp_path: Path) -> None:
    marker = fence_marker(tmp_path, "w0")
    lease = Lease(fence_after_s=3.5, marker=marker)
    heard: list[float] = []
    lease.watchdog = heard.append
    assert not lease.fresh(), "never renewed: no lease"
    now = time.monotonic()
    lease.renewed(now)
    began = lease.fences()
    assert heard == [now] and lease.held(began) and began == 0
    assert count_fence(marker) == 1 and read_fences(marker) == 1
    assert lease.fenced(began) and not lease.held(began)
    assert lease.held(lease.fences()), "an attempt begun after the fence runs"
    lease.renewed(now - 10)
    assert lease.renewed_at == now, "an older renewal never moves the lease back"


def test_a_worker_refuses_lease_numbers_that_leave_no_time_to_fence() -> None:
    WorkerSettings().check_lease()
    assert WorkerSettings().fence_after_s == 3.5
    for bad in ({"fence_margin_s": 0.0}, {"lease_s": 2.0, "fence_margin_s": 1.5}, {"heartbeat_s": 2.0}):
        with pytest.raises(ValueError):
            WorkerSettings(**bad).check_lease()  # type: ignore[arg-type]


def test_a_scheduler_loses_attempts_a_margin_after_the_lease_and_refuses_no_margin() -> None:
    settings = SchedulerSettings(worker_lease_s=5.0, worker_fence_margin_s=1.5)
    settings.check_lease()
    assert settings.lost_after_s == 6.5 > WorkerSettings().fence_after_s
    for lease, margin in ((5.0, 0.0), (1.0, 1.5)):
        with pytest.raises(ValueError):
            SchedulerSettings(worker_lease_s=lease, worker_fence_margin_s=margin).check_lease()


@pytest.mark.parametrize(("written", "clean"), [(b"1.5\nclean\n", True), (b"1.5\n", False), (b"clean\n2.5\n", False)])
def test_the_reaper_skips_its_cleanup_only_when_the_workers_last_line_says_it_stopped_cleanly(
    written: bytes, clean: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read, write = os.pipe()
    os.write(write, written)
    os.close(write)
    with os.fdopen(read, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert watch("w0", tmp_path, Watch(fence_after_s=3600, renewed_at=time.monotonic()), []) is clean
    assert renewals(b"", written)[0] == [float(line) for line in written.split() if line != b"clean"]
