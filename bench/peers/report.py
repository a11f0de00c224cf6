"""The results of one run: medians over repetitions, written as JSON, a markdown table and a PNG plot."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

Runs = list[dict[str, Any]]


def median_of(runs: Runs) -> dict[str, Any]:
    """Each number's median over the repetitions (a dict of numbers: per key)."""
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        if isinstance(first, dict):
            keys = sorted({k for run in runs for k in run[key]})
            merged[key] = {k: round(statistics.median(run[key].get(k, 0.0) for run in runs), 3) for k in keys}
        else:
            merged[key] = round(statistics.median(run[key] for run in runs), 4)
    return merged


def cell(key: str, median: dict[str, Any]) -> str:
    if key == "W1":
        return f"{median['p50_ms']:.2f} / {median['p99_ms']:.2f} ms"
    if key == "W5":
        return f"{median['jobs_per_s']:,.0f} jobs/s"
    return f"{median['makespan_s']:.2f} s"


def markdown(results: dict[str, Any]) -> str:
    systems: dict[str, dict[str, Any]] = results["systems"]
    names = list(systems)
    lines = [f"# Peers benchmark, {results['at']}", "",
             f"{results['machine']}; median of {results['reps']} repetition(s); slots/concurrency "
             f"{results['slots']}; up to {results['in_flight']} submits in flight.", "",
             "| workload | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, workload in results["workloads"].items():
        row = [systems[n][key]["median"] if key in systems[n] else None for n in names]
        lines.append(f"| {key} {workload['title']} | "
                     + " | ".join(cell(key, m) if m else "—" for m in row) + " |")
        if key == "W5":
            lines.append("| W5 CPU per job, all processes of the system | "
                         + " | ".join(f"{m['cpu_ms_per_job']:.2f} ms" if m else "—" for m in row) + " |")
    lost = [sum(r["median"]["lost"] for r in systems[n].values()) for n in names]
    lines += ["| jobs lost (all workloads) | " + " | ".join(str(int(x)) for x in lost) + " |", ""]
    lines += _cpu_breakdown(systems)
    return "\n".join(lines) + "\n"


def _cpu_breakdown(systems: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["CPU per job by process (ms, the heaviest workload run: W5 if run, else the last):", ""]
    for name, by_workload in systems.items():
        median = by_workload.get("W5", list(by_workload.values())[-1])["median"]
        parts = sorted(median["cpu_ms_per_job_by_process"].items(), key=lambda kv: -kv[1])
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in parts if abs(v) >= 0.005))
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems: dict[str, dict[str, Any]] = results["systems"]
    panels = [("W1", "p50_ms", "W1 submit → done p50 (ms)"), ("W3", "makespan_s", "W3 makespan (s)"),
              ("W4", "makespan_s", "W4 makespan (s)"), ("W5", "jobs_per_s", "W5 jobs/s")]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7))
    for axis, (key, metric, title) in zip(axes.flat, panels, strict=True):
        names = [n for n in systems if key in systems[n]]
        values = [systems[n][key]["median"][metric] for n in names]
        bars = axis.bar(names, values, color="#4c72b0")
        axis.bar_label(bars, fmt="%.4g", fontsize=8)
        if key == "W1":
            axis.scatter(names, [systems[n][key]["median"]["p99_ms"] for n in names], marker="_", s=400,
                         color="#c44e52", label="p99", zorder=3)
            axis.legend(fontsize=8)
        axis.set_title(f"{title}, {results['workloads'].get(key, {}).get('jobs', '—')} jobs", fontsize=10)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.suptitle(f"xrunner and peers, {results['at']} ({results['machine']})", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    plot(results, paths[2])
    return paths
