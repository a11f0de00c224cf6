"""Commands that show what xrunner knows: a job's timeline, why it waits, the queues, tenants' limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xrunner.cli.session import DEFAULT_DATA, DataDir, JsonFlag, api_errors, app, gateway, tenants_app
from xrunner.contracts import codec
from xrunner.contracts.api import ConfigureTenant, HistoryEntry
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.contracts.stats import PoolStats, TenantLimits, TenantStats


@app.command("list")
def list_jobs(
    state: Annotated[list[str], typer.Option("--state", help="Only jobs in this state (repeatable).")] = [],  # noqa: B006
    label: Annotated[list[str], typer.Option("--label", help="key=value (repeatable).")] = [],  # noqa: B006
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 50,
    as_json: JsonFlag = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Your jobs, newest first."""
    with api_errors():
        page = gateway(data_dir).list_jobs(state, label, limit)
    if as_json:
        typer.echo(codec.encode(page).decode())
        return
    rows = [[j.id, j.state, str(j.attempt), "" if j.exit_code is None else str(j.exit_code),
             j.created_at.strftime("%Y-%m-%d %H:%M:%S"), _short(" ".join(_argv(j.spec)), 50)] for j in page.jobs]
    Console().print(_table("jobs", ["id", "state", "attempt", "exit", "created", "command"], rows))


def _argv(spec: JobSpec) -> list[str]:
    workload = spec.workload
    return list(workload.argv) if isinstance(workload, ProcessWorkload) else [workload.image, *workload.argv]


def events(job: str, as_json: bool, data_dir: Path) -> None:
    """Print a job's history: sequence, time, event, attempt and the event's key fields."""
    with api_errors():
        entries = gateway(data_dir).events(job)
    if as_json:
        typer.echo(codec.encode(entries).decode())
        return
    for entry in entries:
        typer.echo(_timeline_line(entry))


_ENVELOPE = frozenset({"type", "event_id", "occurred_at", "tenant", "job_id", "attempt"})


def _timeline_line(entry: HistoryEntry) -> str:
    when = entry.occurred_at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    kind = entry.type.removeprefix("job.").rsplit(".", 1)[0]  # job.started.v1 -> started
    return f"{entry.seq:>7}  {when}  {kind:<18} attempt {entry.attempt:<3} {_key_fields(entry.event)}".rstrip()


def _key_fields(event: dict[str, object]) -> str:
    fields = {k: v for k, v in event.items() if k not in _ENVELOPE and v not in (None, "", [], {})}
    spec = fields.pop("spec", None)
    if isinstance(spec, dict) and isinstance(spec.get("workload"), dict):
        workload = spec["workload"]
        command = [str(workload["image"])] if "image" in workload else []
        fields = {"command": " ".join(command + [str(a) for a in workload.get("argv") or []]), **fields}
    return "  ".join(f"{k}={_short(v)}" for k, v in fields.items())


def _short(value: object, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@app.command()
def explain(job_id: str, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Say why a job waits: its reason, position and ETA as the scheduler last published them."""
    with api_errors():
        why = gateway(data_dir).explain(job_id)
    where = [f"position {why.position}"] if why.position is not None else []
    where += [f"eta {why.eta_s:.1f}s"] if why.eta_s is not None else []
    where += [f"pool {why.pool}"] if why.pool else []
    typer.echo(f"{why.job_id} {why.state}: {why.reason}" + (f" ({', '.join(where)})" if where else ""))
    if why.detail:
        typer.echo(f"  {why.detail}")
    typer.echo(f"  snapshot at {why.snapshot_at.isoformat()}" if why.snapshot_at else "  no scheduler snapshot yet")


@app.command()
def stats(as_json: JsonFlag = False, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Show the pools and your tenant's queue (every tenant's with an admin token)."""
    with api_errors():
        view = gateway(data_dir).stats()
    if as_json:
        typer.echo(codec.encode(view).decode())
        return
    console = Console()
    at = view.at.isoformat() if view.at else "none yet"
    console.print(f"snapshot {at}: {view.queued_total} queued, {view.running_total} running", highlight=False)
    console.print(_pools_table(view.pools))
    console.print(_tenants_table(view.tenants))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _pools_table(pools: list[PoolStats]) -> Table:
    columns = ["pool", "workers", "free/slots", "dispatched", "running", "queued", "oldest wait"]
    rows = [
        [p.pool, str(p.workers), f"{p.free_slots}/{p.slots}", str(p.dispatched), str(p.running), str(p.queued),
         f"{p.oldest_wait_s:.1f}s"]
        for p in pools
    ]
    return _table("pools", columns, rows)


def _tenants_table(tenants: list[TenantStats]) -> Table:
    columns = ["tenant", "weight", "queued/max", "in flight/max", "oldest wait", "share", "dispatch p50/p99 ms"]
    rows = [
        [t.tenant, f"{t.limits.weight:g}", f"{t.queued}/{t.limits.max_queued}",
         f"{t.dispatched + t.running}/{t.limits.max_inflight}", f"{t.oldest_wait_s:.1f}s", f"{t.dominant_share:.2f}",
         f"{_ms(t.dispatch_p50_ms)}/{_ms(t.dispatch_p99_ms)}"]
        for t in tenants
    ]
    return _table("tenants", columns, rows)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@tenants_app.command("get")
def tenants_get(tenant: str, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Show a tenant's share and limits."""
    with api_errors():
        typer.echo(_limits_line(tenant, gateway(data_dir).get_tenant(tenant)))


@tenants_app.command("set")
def tenants_set(
    tenant: str,
    weight: Annotated[float | None, typer.Option(help="Weight of its fair share.")] = None,
    max_inflight: Annotated[int | None, typer.Option(help="Jobs dispatched or running at once.")] = None,
    max_queued: Annotated[int | None, typer.Option(help="Jobs waiting in its queue.")] = None,
    rate: Annotated[float | None, typer.Option(help="Submissions per second.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Set a tenant's share and limits; options left out keep their current values."""
    client = gateway(data_dir)
    with api_errors():
        now = client.get_tenant(tenant)
        limits = ConfigureTenant(
            weight=now.weight if weight is None else weight,
            max_inflight=now.max_inflight if max_inflight is None else max_inflight,
            max_queued=now.max_queued if max_queued is None else max_queued,
            submit_rate_per_s=now.submit_rate_per_s if rate is None else rate,
        )
        typer.echo(_limits_line(tenant, client.set_tenant(tenant, limits)))


def _limits_line(tenant: str, limits: TenantLimits) -> str:
    source = "configured" if limits.configured else "defaults"
    return (
        f"{tenant} weight={limits.weight:g} max_inflight={limits.max_inflight} max_queued={limits.max_queued} "
        f"rate={limits.submit_rate_per_s:g}/s ({source})"
    )


