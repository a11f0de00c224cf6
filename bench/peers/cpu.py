"""CPU time spent by a system's processes over an interval, read from /proc: every process descending from the
system's root processes, its own time plus that of the children it reaped (the jobs it ran, exited backends)."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    label: str
    ppid: int
    cpu_s: float  # utime + stime + cutime + cstime


def snapshot(roots: list[int]) -> dict[int, Sample]:
    """Every live process in the trees under `roots`, by pid."""
    everything = {pid: s for pid in _pids() if (s := _sample(pid)) is not None}
    children: dict[int, list[int]] = defaultdict(list)
    for pid, sample in everything.items():
        children[sample.ppid].append(pid)
    tree, todo = {}, [r for r in roots if r in everything]
    while todo:
        pid = todo.pop()
        tree[pid] = everything[pid]
        todo += children.get(pid, [])
    return tree


def spent(before: dict[int, Sample], after: dict[int, Sample]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by process label. A process that exited in between has its whole
    life in its parent's reaped-children time by `after`, so what it had spent by `before` is taken off again."""
    by_label: dict[str, float] = defaultdict(float)
    for pid, sample in after.items():
        earlier = before.get(pid)
        by_label[sample.label] += sample.cpu_s - (earlier.cpu_s if earlier and earlier.label == sample.label else 0.0)
    for pid, sample in before.items():
        if pid not in after:
            by_label[sample.label] -= sample.cpu_s
    return dict(by_label)


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _sample(pid: int) -> Sample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime (fields 14-17 of stat)
    return Sample(_label([a.decode(errors="replace") for a in argv if a]), int(fields[1]), ticks / _TICKS)


def _label(argv: list[str]) -> str:
    """A short name: the program (`postgres`, `nats-server`, `redis-server`, `bwrap`), or for Python the module
    run with -m (`gateway`, `celery`, `saq`) or the script."""
    if not argv:
        return "?"
    program = os.path.basename(argv[0].split(":")[0].split()[0]) if argv[0].strip() else "?"
    if not program.startswith("python"):
        return program
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return "xrunner up" if module == "xrunner.cli" else module.rsplit(".", 1)[-1]
    scripts = [a for a in argv[1:] if not a.startswith("-")]
    return os.path.basename(scripts[0]) if scripts else program
