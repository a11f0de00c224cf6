"""`xrunner deadletters list|show|replay`: the events projections could not apply (stream `XR_DEAD`), and their
re-drive once the cause is fixed. `list` and `show` read the stream; `replay DEAD_SEQ` runs the owning service's
`redrive` command, which re-folds the letter's job in that projection from its history (idempotent; see
`servicekit/redrive.py` and docs/replay.md)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xrunner.cli.projections import run_service_command, stack_env
from xrunner.cli.session import DEFAULT_DATA, DataDir, JsonFlag, app
from xrunner.servicekit import streams
from xrunner.servicekit.redrive import Parked, letter, letters

deadletters_app = typer.Typer(help="Events a projection could not apply: list, show, re-drive.", no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")

SERVICES = {"gateway.jobs": "gateway"}  # the projections whose service offers `redrive`


async def _read(url: str, projection: str | None, dead_seq: int | None) -> list[Parked]:
    nc = await streams.connect(url, "xrunner-deadletters")
    try:
        js = nc.jetstream()
        if dead_seq is None:
            return await letters(js, projection)
        found = await letter(js, dead_seq)
        return [] if found is None else [found]
    finally:
        await nc.close()


def _fetch(data_dir: DataDir, projection: str | None = None, dead_seq: int | None = None) -> list[Parked]:
    return asyncio.run(_read(stack_env(data_dir)["XR_NATS_URL"], projection, dead_seq))


def _doc(parked: Parked, payload: bool) -> dict[str, object]:
    doc: dict[str, object] = {"dead_seq": parked.dead_seq, "projection": parked.letter.projection,
                              "seq": parked.letter.seq, "subject": parked.letter.subject,
                              "error": parked.letter.error,
                              "parked_at": parked.parked_at.isoformat() if parked.parked_at else None}
    if payload:
        doc["payload"] = parked.data.decode(errors="backslashreplace")
    return doc


@deadletters_app.command("list")
def list_letters(
    projection: Annotated[str | None, typer.Option(help="Only this projection's (e.g. gateway.jobs).")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """The parked events, oldest first: where each is in the log, who parked it and why."""
    found = _fetch(data_dir, projection)
    if as_json:
        typer.echo(json.dumps([_doc(p, payload=False) for p in found]))
        return
    table = Table(title=f"{len(found)} dead letters", title_justify="left")
    for column in ("dead seq", "projection", "log seq", "subject", "error"):
        table.add_column(column)
    for p in found:
        table.add_row(str(p.dead_seq), p.letter.projection, str(p.letter.seq), p.letter.subject, p.letter.error)
    Console().print(table)


@deadletters_app.command("show")
def show(dead_seq: int, data_dir: DataDir = DEFAULT_DATA) -> None:
    """One letter as JSON, with the event as stored (bytes that are not UTF-8 backslash-escaped)."""
    found = _fetch(data_dir, dead_seq=dead_seq)
    if not found:
        typer.echo(f"xrunner: no dead letter at {dead_seq}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(_doc(found[0], payload=True), indent=2))


@deadletters_app.command("replay")
def replay(dead_seq: int, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Re-drive a letter into the projection that parked it, once the cause is fixed and deployed: its job is
    folded again from its history (idempotent; the log is not changed)."""
    found = _fetch(data_dir, dead_seq=dead_seq)
    if not found:
        typer.echo(f"xrunner: no dead letter at {dead_seq}", err=True)
        raise typer.Exit(2)
    service = SERVICES.get(found[0].letter.projection)
    if service is None:
        typer.echo(f"xrunner: {found[0].letter.projection} cannot re-fold one job; run `xrunner projections rebuild`",
                   err=True)
        raise typer.Exit(1)
    raise typer.Exit(run_service_command(data_dir, service, "redrive", str(dead_seq)))
