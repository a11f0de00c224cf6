"""How long the artifacts service takes to preview a 10 MB image: the thumbnail derived in-process (the decoder's
cost) and through the limited child process the service uses (`isolation.Isolated`, a spare child waiting), for a
10 MB PNG and a 10 MB JPEG of noise (noise does not compress, so the file is as large as the pixels it holds).

    .venv/bin/python bench/previews.py --runs 20        # run it when the machine is otherwise idle (load < 1)

Results go to bench/results/previews-image-10mb.json and a line in bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from PIL import Image

from xrunner.artifacts.isolation import Isolated, Limits
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
    args = parser.parse_args()
    result: dict[str, object] = {"runs": args.runs}
    isolated = Isolated(Limits())
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
    await isolated.close()
    result |= {"target": "preview of a 10 MB image <= 300 ms", "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "machine": f"{os.cpu_count()} cores", "load_avg_1m": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "previews-image-10mb.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `previews-image-10mb`: {msgspec.json.encode(result).decode()}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
