"""How long the artifacts service takes to preview a 10 MB image: the thumbnail derived in-process (the decoder's
cost) and through the limited child process the service uses (`isolation.Isolated`, a spare child waiting), for a
10 MB PNG and a 10 MB JPEG of noise (noise does not compress, so the file is as large as the pixels it holds).
With `--text`: a job's 2 KB `logs.txt` previewed back to back, as the previewer meets them under load, through a
child each (how text was previewed until session 7) and in a thread (how it is now).

    .venv/bin/python bench/previews.py --runs 20        # run it when the machine is otherwise idle (load < 1)
    .venv/bin/python bench/previews.py --text --runs 50

Results go to bench/results/previews-image-10mb.json (or previews-text.json) and a line in bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from PIL import Image

from xrunner.artifacts.isolation import Isolated, Limits
from xrunner.artifacts.previewer import sniff_or_text
from xrunner.artifacts.previews import derive
from xrunner.cli.bench import percentiles

RESULTS = Path(__file__).parent / "results"
TARGET = 10 * 1024 * 1024


def noise_image(path: Path, fmt: str) -> int:
    """Write an RGB image of noise about 10 MB large in `fmt`; returns its size in bytes."""
    side = 1870 if fmt == "PNG" else 2950  # PNG keeps every byte of noise; JPEG at quality 95 about 1.2 bytes/pixel
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, fmt, quality=95)
    return path.stat().st_size


async def timed(runs: int, fn: Callable[[], Awaitable[object]], pause_s: float = 0.0) -> dict[str, float]:
    """Percentiles of `fn`'s time in ms over `runs` calls, each after an untimed pause."""
    samples = []
    for _ in range(runs):
        await asyncio.sleep(pause_s)
        began = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - began) * 1000)
    return percentiles(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--text", action="store_true", help="a small logs.txt back to back, not a 10 MB image")
    args = parser.parse_args()
    result: dict[str, object] = {"runs": args.runs}
    isolated = Isolated(Limits())
    if args.text:
        await write(await text_result(isolated, args.runs) | result, "previews-text",
                    "a job's logs.txt previewed without a process start")
        return
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in ("PNG", "JPEG"):
            path = Path(scratch) / f"noise.{fmt.lower()}"
            size = noise_image(path, fmt)
            assert derive(path, path.name).kind == "image"

            async def in_process(p: Path = path) -> object:
                return await asyncio.to_thread(derive, p, p.name)

            async def in_child(p: Path = path) -> object:
                return await isolated.derive(p, p.name)

            # the spare child is started after each preview: the pause lets it finish its imports, as between the
            # artifacts of a job it usually has
            result[fmt.lower()] = {"bytes": size, "in_process_ms": await timed(args.runs, in_process),
                                   "child_process_ms": await timed(args.runs, in_child, pause_s=1.5)}
    await write(result, "previews-image-10mb", "preview of a 10 MB image <= 300 ms")
    await isolated.close()


async def text_result(isolated: Isolated, runs: int) -> dict[str, object]:
    """A 2 KB log previewed back to back: through a child per file, and as the previewer does it now."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "logs.txt"
        path.write_bytes(b"".join(b"step %d: \x1b[32mok\x1b[0m\n" % i for i in range(100)))

        async def in_child() -> object:
            return await isolated.derive(path, path.name)

        async def in_thread() -> object:
            return await asyncio.to_thread(sniff_or_text, path, path.name)

        size = path.stat().st_size
        began = cpu_s()
        child = await timed(runs, in_child)
        await isolated.close()  # its spare child's start counts too
        child_cpu = cpu_s() - began
        began = cpu_s()
        thread = await timed(runs, in_thread)
        thread_cpu = cpu_s() - began
    return {"bytes": size, "child_process_ms": child, "in_thread_ms": thread,
            "cpu_ms_per_preview_with_children": {"child": child_cpu * 1000 / runs, "thread": thread_cpu * 1000 / runs}}


def cpu_s() -> float:
    """CPU time of this process and of its children that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def write(result: dict[str, object], name: str, target: str) -> None:
    result |= {"target": target, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "machine": f"{os.cpu_count()} cores", "load_avg_1m": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `{name}`: {msgspec.json.encode(result).decode()}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
