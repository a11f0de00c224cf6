"""`xrunner projections list|rebuild|snapshot`: the projections a stack keeps, a check that each is a pure fold of
the log (refold it into a scratch schema, from sequence 1 or from a snapshot, and compare with the live one), and
snapshots to start rebuilds from.

Each service owns its projection code, so the CLI runs the service's own `rebuild` command (`python -m
xrunner.<service> rebuild`) against the stack's NATS and Postgres (from the environment or `.xrunner/env`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from xrunner.cli.session import DEFAULT_DATA, DataDir, app, saved_env

projections_app = typer.Typer(help="Rebuild projections from the log and check them.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")

# service → what its projection holds; each service has `python -m xrunner.<service> rebuild`
REBUILDABLE = {
    "gateway": "gateway.jobs: the jobs as the API shows them",
    "scheduler": "scheduler.jobs and scheduler.tenants: what admission and placement decide on",
    "artifacts": "artifacts.index: the stored artifacts, their expiry, and each tenant's artifact TTL",
}


@projections_app.command("list")
def list_projections() -> None:
    """The projections `rebuild` can refold and check, by service."""
    for service, holds in REBUILDABLE.items():
        typer.echo(f"{service:<10} {holds}")


@projections_app.command("rebuild")
def rebuild(
    service: Annotated[str, typer.Argument(help=" | ".join(REBUILDABLE))],
    from_snapshot: Annotated[bool, typer.Option(help="Start from the projection's snapshot; fold only the tail.")]
    = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Refold the whole log (the archive's part too) into `<schema>_rebuild` and report whether it equals the live
    projection; with --from-snapshot, start from the snapshot `projections snapshot` took."""
    raise typer.Exit(_run(service, "rebuild-from-snapshot" if from_snapshot else "rebuild", data_dir))


@projections_app.command("snapshot")
def snapshot(
    service: Annotated[str, typer.Argument(help=" | ".join(REBUILDABLE))],
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Copy the live projection with its position into `<schema>_snapshot`, where `rebuild --from-snapshot`
    starts."""
    raise typer.Exit(_run(service, "snapshot", data_dir))


def _run(service: str, command: str, data_dir: Path) -> int:
    """`python -m xrunner.<service> <command>` against the stack's NATS and Postgres; its exit code."""
    if service not in REBUILDABLE:
        raise typer.BadParameter(f"one of {', '.join(REBUILDABLE)}")
    return run_service_command(data_dir, service, command)


def stack_env(data_dir: Path) -> dict[str, str]:
    """What a service's one-off command needs: the stack's NATS and Postgres (from the environment or
    `.xrunner/env`), and no other XR_ setting of this shell."""
    saved = saved_env(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_") or k.startswith("XR_ARCHIVE_")}
    for name in ("XR_NATS_URL", "XR_DATABASE_URL"):
        value = os.environ.get(name) or saved.get(name)
        if not value:
            raise typer.BadParameter(f"set {name}, or run `xrunner up` in this directory first")
        env[name] = value
    env["XR_LOG_LEVEL"] = "warning"
    return env


def run_service_command(data_dir: Path, service: str, *command: str) -> int:
    """Run `python -m xrunner.<service> <command...>` against the stack; its exit code."""
    result = subprocess.run([sys.executable, "-m", f"xrunner.{service}", *command], env=stack_env(data_dir),
                            check=False)
    return result.returncode
