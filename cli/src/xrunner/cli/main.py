"""The `xrunner` command: `up` runs the embedded stack; the rest talk to a gateway over HTTP."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xrunner.cli import embedded
from xrunner.cli.client import ApiError, Client
from xrunner.cli.projections import projections_app
from xrunner.cli.stack import Stack, StackOptions
from xrunner.contracts import codec
from xrunner.contracts.api import ConfigureTenant, HistoryEntry
from xrunner.contracts.spec import JobSpec, ProcessWorkload, Resources
from xrunner.contracts.stats import PoolStats, TenantLimits, TenantStats
from xrunner.servicekit.auth import SCOPES, mint

app = typer.Typer(
    help="xrunner: a distributed job runner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

tenants_app = typer.Typer(help="Tenants' shares and limits (needs an admin token).", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(projections_app, name="projections")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="XR_DATA_DIR", help="Where the embedded stack keeps state.")
]
DEFAULT_DATA = Path(".xrunner")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON answer as is.")]


def _env_file(data_dir: Path) -> Path:
    return data_dir / "env"


def _connection(data_dir: Path) -> tuple[str, str]:
    """API URL and token: XR_API_URL / XR_TOKEN, else what `xrunner up` wrote into the data dir."""
    url, token = os.environ.get("XR_API_URL"), os.environ.get("XR_TOKEN")
    env_file = _env_file(data_dir)
    if (url is None or token is None) and env_file.exists():
        saved = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        url, token = url or saved.get("XR_API_URL"), token or saved.get("XR_TOKEN")
    if not url or not token:
        raise typer.BadParameter("set XR_API_URL and XR_TOKEN, or run `xrunner up` in this directory first")
    return url, token


def _client(data_dir: Path) -> Client:
    return Client(*_connection(data_dir))


@contextmanager
def _api_errors() -> Iterator[None]:
    """Print a gateway error as `xrunner: <status> <code>: <detail>` and exit 2."""
    try:
        yield
    except ApiError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA,
    port: Annotated[int, typer.Option(help="Gateway port; the other services take the next ones.")] = 8700,
    host: Annotated[str, typer.Option(help="Address every service listens on.")] = "127.0.0.1",
    nats_url: Annotated[str | None, typer.Option(envvar="XR_NATS_URL", help="Use this NATS instead.")] = None,
    database_url: Annotated[str | None, typer.Option(envvar="XR_DATABASE_URL", help="Use this Postgres.")] = None,
    slots: Annotated[int, typer.Option(help="Concurrent jobs of the embedded worker.")] = 8,
    sandbox: Annotated[str, typer.Option(help="auto (bubblewrap if installed), bwrap, or none.")] = "auto",
    sync_always: Annotated[bool, typer.Option(help="fsync every JetStream write before acking it.")] = False,
) -> None:
    """Start nats-server, Postgres and every service (one OS process each) plus a worker; Ctrl-C stops all."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        StackOptions(
            data_dir=data_dir,
            host=host,
            port=port,
            nats_url=nats_url,
            database_url=database_url,
            slots=slots,
            sandbox=sandbox,
            sync_always=sync_always,
        )
    )
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background with SIGINT ignored
        signal.signal(sig, _interrupt)
    try:
        nats, database = stack.start_infra()
        stack.start_services(nats, database)
        stack.wait_ready()
        token = _dev_token(stack.secret())
        _env_file(data_dir).write_text(
            f"XR_API_URL={stack.api_url}\nXR_TOKEN={token}\nXR_NATS_URL={nats}\nXR_DATABASE_URL={database}\n"
        )
        _banner(stack, token)
        while True:
            for name in stack.supervise_once():
                typer.echo(f"xrunner: {name} exited, restarted (see {data_dir}/logs/{name}.log)", err=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nxrunner: stopping ...", err=True)
    except RuntimeError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        stack.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dev_token(secret: str, tenant: str = "dev", scopes: list[str] | None = None, ttl_s: int = 30 * 86_400) -> str:
    return mint(
        secret,
        tenant=tenant,
        subject=f"{tenant}-user",
        scopes=scopes or list(SCOPES),
        issuer="xrunner",
        audience="xrunner",
        ttl_s=ttl_s,
        now=int(time.time()),
    )


def _banner(stack: Stack, token: str) -> None:
    typer.echo(f"""xrunner is up (data in {stack.opts.data_dir}, logs in {stack.opts.data_dir}/logs)
  API      {stack.api_url}        (OpenAPI at {stack.api_url}/schema)
  token    {token}
  try      curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
             -d '{{"workload": {{"kind": "process", "argv": ["echo", "hi"]}}}}' {stack.api_url}/v1/jobs
  or       xrunner submit --wait -- echo hi
Ctrl-C stops everything.""")


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="The tenant the token acts for.")] = "dev",
    scopes: Annotated[str, typer.Option(help="Space- or comma-separated scopes.")] = "jobs:read jobs:write",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Mint a development token signed with the embedded stack's secret."""
    secret = os.environ.get("XR_JWT_SECRET") or (data_dir / "secret").read_text().strip()
    typer.echo(_dev_token(secret, tenant, scopes.replace(",", " ").split(), ttl))


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    argv: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    wait: Annotated[bool, typer.Option(help="Wait for the job to end, print its output, exit with its code.")] = False,
    timeout: Annotated[float, typer.Option(help="Job execution timeout in seconds.")] = 3600.0,
    pool: Annotated[str | None, typer.Option(help="Run in this worker pool.")] = None,
    env: Annotated[list[str], typer.Option("--env", "-e", help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, typer.Option(help="Submitting the same key twice makes one job.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Submit a command as a job: `xrunner submit --wait -- echo hi`."""
    spec = JobSpec(
        workload=ProcessWorkload(argv=argv, env=dict(e.split("=", 1) for e in env)),
        resources=Resources(pool=pool),
        timeout_s=timeout,
    )
    client = _client(data_dir)
    try:
        job = client.submit(spec, idempotency_key).job
        typer.echo(f"{job.id} {job.state}", err=wait)
        if wait:
            view = client.wait(job.id, timeout + 600)
            sys.stdout.write(client.logs(job.id).text)
            typer.echo(f"{view.id} {view.state} exit={view.exit_code}", err=True)
            raise typer.Exit(0 if view.state == "succeeded" else (view.exit_code or 1))
    except ApiError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def get(job_id: str, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Show a job as JSON."""
    with _api_errors():
        typer.echo(codec.encode(_client(data_dir).get(job_id)).decode())


@app.command()
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print a job's output."""
    client = _client(data_dir)
    offset = 0
    with _api_errors():
        while True:
            log = client.logs(job_id, offset)
            sys.stdout.write(log.text)
            sys.stdout.flush()
            offset = log.next_offset
            if log.complete or not follow:
                return
            time.sleep(0.2)


@app.command()
def cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in the job's history.")] = "",
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Ask a job to stop; asking again is harmless."""
    with _api_errors():
        view = _client(data_dir).cancel(job_id, reason)
    typer.echo(f"{view.id} {view.state} cancel requested")


@app.command()
def events(
    job: Annotated[str, typer.Option("--job", help="The job whose history to print.")],
    as_json: JsonFlag = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print a job's history: sequence, time, event, attempt and the event's key fields."""
    with _api_errors():
        entries = _client(data_dir).events(job)
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
    with _api_errors():
        why = _client(data_dir).explain(job_id)
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
    with _api_errors():
        view = _client(data_dir).stats()
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
    with _api_errors():
        typer.echo(_limits_line(tenant, _client(data_dir).get_tenant(tenant)))


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
    client = _client(data_dir)
    with _api_errors():
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


@app.command()
def bench(
    jobs: Annotated[int, typer.Option(help="How many jobs to submit.")] = 100,
    cmd: Annotated[str, typer.Option(help="The shell command each job runs.")] = "true",
    tenants: Annotated[int, typer.Option(help="Spread the jobs over this many tenants.")] = 1,
    concurrency: Annotated[int, typer.Option(help="Concurrent HTTP requests.")] = 64,
    batch: Annotated[int, typer.Option(help="Submit in batches of this size (0: one request per job).")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up on a job after this many seconds.")] = 300.0,
    output: Annotated[Path | None, typer.Option(help="Also write the full result as JSON here.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Load-test through the public API: makespan, submit→started and submit→done percentiles, lost and reruns."""
    import asyncio

    from xrunner.cli.bench import run_bench

    api, _ = _connection(data_dir)
    secret = os.environ.get("XR_JWT_SECRET") or (data_dir / "secret").read_text().strip()
    tokens = [_dev_token(secret, f"bench{i}", ["jobs:read", "jobs:write"]) for i in range(tenants)]
    result = asyncio.run(run_bench(api, tokens, ["sh", "-c", cmd], jobs, concurrency, timeout, batch=batch))
    typer.echo(
        f"jobs {result.jobs} over {result.tenants} tenant(s): {result.states}, lost {result.lost}, "
        f"re-run {result.rerun}, rejected {result.rejected}"
    )
    typer.echo(
        f"makespan {result.makespan_s:.3f} s; submit request p50 {result.submit_p50_ms:.1f} ms "
        f"p99 {result.submit_p99_ms:.1f} ms"
    )
    typer.echo(f"submit→started ms {result.started_ms}")
    typer.echo(f"submit→done    ms {result.done_ms}")
    if output is not None:
        output.write_bytes(codec.encode(result))


__all__ = ["app", "embedded"]
