"""`xrunner events`: a job's history (`--job`, over the API), and `export` / `import` of the log as NDJSON, read
from and appended to a stack's NATS directly (an operator's tools: XR_NATS_URL, or what `xrunner up` wrote)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated

import typer

from xrunner.cli import views
from xrunner.cli.session import DEFAULT_DATA, DataDir, JsonFlag, app, saved_env
from xrunner.servicekit import archive, history, streams
from xrunner.servicekit.blobs import open_blobs
from xrunner.servicekit.importer import Imported, ImportFailed, import_history
from xrunner.servicekit.settings import CommonSettings, load_settings

events_app = typer.Typer(help="Job histories; export and import the log as NDJSON.", invoke_without_command=True)
app.add_typer(events_app, name="events")


@events_app.callback()
def events(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option("--job", help="The job whose history to print.")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print a job's history (`xrunner events --job JOB`), or export / import the log."""
    if ctx.invoked_subcommand is not None:
        return
    if job is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    views.events(job, as_json, data_dir)


def nats_url(data_dir: Path) -> str:
    url = os.environ.get("XR_NATS_URL") or saved_env(data_dir).get("XR_NATS_URL")
    if not url:
        raise typer.BadParameter("set XR_NATS_URL, or run `xrunner up` in this directory first")
    return url


@events_app.command("export")
def export(
    job: Annotated[str | None, typer.Option(help="Only this job's events.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events (its jobs and its config).")] = None,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Only events of this type, e.g. started or job.started.v1 (repeatable).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Stored at or after this time (RFC 3339).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Stored at or before this time (RFC 3339).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Write the log's events as NDJSON, one line each: seq, subject, headers, payload (the event's JSON), time
    (when the log stored it); with an archive (XR_ARCHIVE_*), its events first."""
    flt = history.Filter(job=job, tenant=tenant, types=tuple(types or ()), since=_aware(since), until=_aware(until))
    start = time.perf_counter()
    with _opened(output) as out:
        count = asyncio.run(_export(nats_url(data_dir), flt, out))
    typer.echo(f"exported {count} events in {time.perf_counter() - start:.2f} s", err=True)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as local time."""
    return moment.astimezone() if moment is not None and moment.tzinfo is None else moment


@contextlib.contextmanager
def _opened(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with output.open("wb") as out:
        yield out


async def _export(url: str, flt: history.Filter, out: IO[bytes]) -> int:
    """The archive's part first (the `XR_ARCHIVE_*` settings name it, as for the services), then the stream's."""
    blobs = open_blobs(load_settings(CommonSettings, "cli", os.environ))
    nc = await streams.connect(url, "xrunner-export")
    try:
        return await archive.export(nc.jetstream(), archive.Archive(blobs) if blobs else None, flt, out)
    finally:
        await nc.close()
        if blobs is not None:
            await blobs.close()


@events_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="An NDJSON history written by `xrunner events export`.")],
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Append a history to this stack's log, each job's events in order (the original sequence kept in the
    Xr-Original-Seq header). The whole file is checked first; importing a file again appends nothing twice."""
    try:
        with file.open("rb") as src:
            checked = history.check(src)
    except history.BadLine as exc:
        typer.echo(f"xrunner: {file}: {exc}; nothing imported", err=True)
        raise typer.Exit(2) from exc
    start = time.perf_counter()
    try:
        with file.open("rb") as src:
            result = asyncio.run(_import(nats_url(data_dir), src, checked))
    except ImportFailed as exc:
        typer.echo(f"xrunner: {file}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"imported {result.appended} events ({result.skipped} already present) of {checked.events}, "
               f"{len(checked.scopes)} histories, in {time.perf_counter() - start:.2f} s", err=True)


async def _import(url: str, src: IO[bytes], checked: history.Checked) -> Imported:
    nc = await streams.connect(url, "xrunner-import")
    try:
        return await import_history(nc, src, checked)
    finally:
        await nc.close()
