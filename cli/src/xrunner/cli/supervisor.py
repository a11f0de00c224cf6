"""Keeps the embedded stack's processes running: restarts any that exits, with exponential back-off that resets
after a healthy run, and stops them all in order, the last layer started first."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xrunner.cli import embedded

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 30.0
HEALTHY_AFTER_S = 30.0  # a child that ran this long starts a new back-off series when it exits


def restart_delay(failures: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """The wait before the restart that follows `failures` consecutive short runs: base, 2·base, 4·base … cap."""
    return 0.0 if failures <= 0 else min(cap, base * 2 ** (failures - 1))


@dataclass
class Child:
    """One supervised process. `launch` spawns it (without waiting); `layer` orders start and stop: a layer stops
    only after every higher one has, and the children of one layer stop together."""

    name: str
    launch: Callable[[], embedded.Launched]
    layer: int
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    current: embedded.Launched | None = None
    ready: bool = False
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None  # set while it is down, waiting out its back-off
    restarts: int = 0

    @property
    def proc(self) -> embedded.Process:
        assert self.current is not None, "launch the child first"
        return self.current.proc


@dataclass
class Supervisor:
    healthy_after_s: float = HEALTHY_AFTER_S
    children: list[Child] = field(default_factory=list)

    def add(self, *children: Child) -> None:
        """Launch `children` (they start side by side; `wait_ready` blocks on them)."""
        for child in children:
            self.children.append(child)
            self._launch(child, time.monotonic())

    def wait_ready(self, *children: Child) -> None:
        """Block until each of `children` serves; raises with its log's tail when one exits or times out."""
        for child in children:
            assert child.current is not None
            child.current.wait_ready()
            child.ready = True

    def tick(self) -> list[str]:
        """Notice exits, restart the children whose back-off ran out, notice restarted ones serving again, and
        kill one that does not serve within its start timeout (it is then restarted). Returns what happened."""
        now = time.monotonic()
        return [line for child in self.children if (line := self._check(child, now))]

    def _check(self, child: Child, now: float) -> str | None:
        if child.restart_at is not None:
            return self._restart(child, now) if now >= child.restart_at else None
        if child.proc.poll() is not None:
            return self._exited(child, now)
        if child.ready:
            return None
        assert child.current is not None
        if child.current.ready():
            child.ready = True
            return f"{child.name} serves again, {now - child.started_at:.1f}s after its restart"
        if now - child.started_at > child.current.timeout:
            embedded.signal_group(child.proc, signal.SIGKILL)
            return f"{child.name} did not serve within {child.current.timeout:.0f}s; killed"
        return None

    def _exited(self, child: Child, now: float) -> str:
        uptime = now - child.started_at
        child.failures = 1 if uptime >= self.healthy_after_s else child.failures + 1
        child.restart_at = now + restart_delay(child.failures)
        embedded.kill_leftovers(child.proc)
        return (
            f"{child.name} exited ({_exit_status(child.proc.returncode)}) after {uptime:.1f}s;"
            f" restarting in {child.restart_at - now:.2f}s"
        )

    def _restart(self, child: Child, now: float) -> str:
        try:
            self._launch(child, now)
        except (OSError, RuntimeError) as exc:
            child.failures += 1
            child.restart_at = now + restart_delay(child.failures)
            return f"{child.name} could not be started ({exc}); retrying in {child.restart_at - now:.2f}s"
        child.restarts += 1
        assert child.current is not None
        return f"{child.name} restarted (restart {child.restarts}; log {child.current.log_file})"

    def _launch(self, child: Child, now: float) -> None:
        child.current = child.launch()
        child.started_at, child.ready, child.restart_at = now, False, None

    def stop(self) -> dict[str, float]:
        """Stop every child, the highest layer first; nothing started here outlives this. Returns when each
        child had exited, in seconds since the stop began."""
        began, exited = time.monotonic(), {}
        for layer in sorted({child.layer for child in self.children}, reverse=True):
            members = [c for c in self.children if c.layer == layer and c.current is not None]
            for child in members:
                if child.proc.poll() is None:
                    embedded.signal_group(child.proc, child.stop_signal)
            for child in members:
                embedded.wait_or_kill(child.proc, child.stop_timeout)
                exited[child.name] = round(time.monotonic() - began, 3)
                embedded.kill_leftovers(child.proc)
        return exited


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
