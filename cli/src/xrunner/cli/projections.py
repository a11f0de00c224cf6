"""`xrunner projections rebuild SERVICE`: refold the log into a scratch schema and compare it with the live one.

Each service owns its projection code, so the CLI runs the service's own `rebuild` command (`python -m
xrunner.<service> rebuild`) against the stack's NATS and Postgres (from the environment or `.xrunner/env`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

projections_app = typer.Typer(help="Rebuild projections from the log and check them.", no_args_is_help=True)
REBUILDABLE = ("scheduler", "gateway")


def _saved(data_dir: Path) -> dict[str, str]:
    env_file = data_dir / "env"
    if not env_file.exists():
        return {}
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


@projections_app.command("rebuild")
def rebuild(
    service: Annotated[str, typer.Argument(help="scheduler or gateway")],
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="XR_DATA_DIR")] = Path(".xrunner"),
) -> None:
    """Refold the whole log into `<schema>_rebuild` and report whether it equals the live projection."""
    if service not in REBUILDABLE:
        raise typer.BadParameter(f"one of {', '.join(REBUILDABLE)}")
    saved = _saved(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    for name in ("XR_NATS_URL", "XR_DATABASE_URL"):
        value = os.environ.get(name) or saved.get(name)
        if not value:
            raise typer.BadParameter(f"set {name}, or run `xrunner up` in this directory first")
        env[name] = value
    env["XR_LOG_LEVEL"] = "warning"
    result = subprocess.run([sys.executable, "-m", f"xrunner.{service}", "rebuild"], env=env, check=False)
    raise typer.Exit(result.returncode)
