"""The `xrunner` command: `up` runs the embedded stack; the rest talk to a gateway over HTTP."""

from __future__ import annotations

import os
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from xrunner.cli import (
    artifacts,  # noqa: F401  (its command registers on the app)
    attach,  # noqa: F401  (its command registers on the app)
    deadletters,  # noqa: F401  (its commands register on the app)
    decisions,  # noqa: F401  (its command registers on the app)
    embedded,
    history,  # noqa: F401  (its commands register on the app)
    projections,  # noqa: F401  (its commands register on the app)
    views,  # noqa: F401  (its commands register on the app)
)
from xrunner.cli.client import ApiError
from xrunner.cli.edge import Sse, follow
from xrunner.cli.session import (
    DEFAULT_DATA,
    DataDir,
    RealtimeUrl,
    api_errors,
    app,
    connection,
    dev_token,
    edge,
    env_file,
    gateway,
)
from xrunner.cli.stack import CLUSTER_SIZES, DEFAULT_SLOTS, DEFAULT_WORKERS, Stack, StackOptions, identity_settings
from xrunner.contracts import codec
from xrunner.contracts.spec import JobSpec, ProcessWorkload, Resources


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA,
    port: Annotated[int, typer.Option(help="Gateway port; the other services take the next ones.")] = 8700,
    host: Annotated[str, typer.Option(help="Address every service listens on.")] = "127.0.0.1",
    nats_url: Annotated[str | None, typer.Option(envvar="XR_NATS_URL", help="Use this NATS instead.")] = None,
    database_url: Annotated[str | None, typer.Option(envvar="XR_DATABASE_URL", help="Use this Postgres.")] = None,
    slots: Annotated[int, typer.Option(help="Concurrent jobs of each worker process.")] = DEFAULT_SLOTS,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each with --slots).")] = DEFAULT_WORKERS,
    sandbox: Annotated[str, typer.Option(help="bwrap (bubblewrap), or none to run jobs unsandboxed.")] = "bwrap",
    sync_always: Annotated[bool, typer.Option(help="fsync every JetStream write before acking it.")] = False,
    warm_images: Annotated[str, typer.Option(help="Docker containers started ahead: 'image=N,image2=M'.")] = "",
    warm_shells: Annotated[int, typer.Option(min=0, help="Shells each worker starts ahead for process jobs.")] = 8,
    cluster: Annotated[int, typer.Option(help="nats-server nodes: 3 runs a JetStream cluster, streams at R3.")] = 1,
    console_dir: Annotated[Path | None, typer.Option(envvar="XR_CONSOLE_DIR",
                                                     help="Serve this web console build at /console/.")] = None,
) -> None:
    """Start nats-server, Postgres and every service (one OS process each) plus --workers worker processes (100
    concurrent jobs by default); Ctrl-C stops all."""
    if cluster not in CLUSTER_SIZES:
        raise typer.BadParameter(f"--cluster is one of {', '.join(map(str, CLUSTER_SIZES))}")
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        StackOptions(
            data_dir=data_dir,
            host=host,
            port=port,
            nats_url=nats_url,
            database_url=database_url,
            slots=slots,
            workers=workers,
            sandbox=sandbox,
            sync_always=sync_always,
            warm_images=warm_images,
            warm_shells=warm_shells,
            cluster=cluster,
            console_dir=_console_build(console_dir),
            identity=identity_settings(os.environ),
        )
    )
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background with SIGINT ignored
        signal.signal(sig, _interrupt)
    try:
        nats, database = stack.start_infra()
        stack.start_services(nats, database)
        stack.wait_ready()
        # With an identity provider the stack accepts only its tokens: there is no development token to offer.
        token = None if stack.opts.external_tokens else dev_token(stack.secret())
        saved = {"XR_API_URL": stack.api_url, "XR_REALTIME_URL": stack.realtime_url,
                 "XR_ARTIFACTS_URL": stack.artifacts_url, "XR_TOKEN": token, "XR_NATS_URL": nats,
                 "XR_DATABASE_URL": database}
        env_file(data_dir).write_text("".join(f"{k}={v}\n" for k, v in saved.items() if v))
        _banner(stack, token)
        while True:
            for line in stack.supervise_once():
                typer.echo(f"xrunner: {line}", err=True)
            time.sleep(0.1)
    except KeyboardInterrupt:
        typer.echo("\nxrunner: stopping ...", err=True)
    except RuntimeError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        exited = stack.stop()
        if exited:
            last = max(exited, key=exited.__getitem__)
            typer.echo(f"xrunner: stopped in {exited[last]:.1f} s (the last to exit: {last})", err=True)


def _console_build(path: Path | None) -> Path | None:
    """The console build to serve; one without an index.html (never built) is refused with what to run. Without
    --console-dir, the build inside the installed gateway's wheel (none in an editable checkout: `./dev up` passes
    web/console/dist)."""
    if path is None:
        packaged = Path(str(metadata.distribution("xrunner-gateway").locate_file("xrunner/gateway/console_build")))
        return packaged if (packaged / "index.html").is_file() else None
    if not (path / "index.html").is_file():
        typer.echo(f"xrunner: no console build in {path} (build it: ./dev console, or leave out --console-dir)",
                   err=True)
        raise typer.Exit(2)
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _banner(stack: Stack, token: str | None) -> None:
    typer.echo(f"""xrunner is up (data in {stack.opts.data_dir}, logs in {stack.opts.data_dir}/logs)
  API      {stack.api_url}        (OpenAPI at {stack.api_url}/schema)
  realtime {stack.realtime_url}        (SSE: /v1/events, /v1/jobs/ID/logs/stream)
  artifacts {stack.artifacts_url}       (OpenAPI at {stack.artifacts_url}/schema; `xrunner artifacts JOB`)
  token    {token or "one from your identity provider (XR_JWKS_URL/XR_JWKS_FILE is set)"}
  try      curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
             -d '{{"workload": {{"kind": "process", "argv": ["echo", "hi"]}}}}' {stack.api_url}/v1/jobs
  or       xrunner submit --wait -- echo hi{_console_line(stack, token)}
Ctrl-C stops everything.""")


def _console_line(stack: Stack, token: str | None) -> str:
    """The console's sign-in link: the token rides in the fragment, which browsers never send to a server."""
    if not stack.console_url:
        return ""
    return f"\n  console  {stack.console_url}" + (f"#token={token}" if token else "")


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="The tenant the token acts for.")] = "dev",
    scopes: Annotated[str, typer.Option(help="Space- or comma-separated scopes.")] = "jobs:read jobs:write",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Mint a development token signed with the embedded stack's secret."""
    secret = os.environ.get("XR_JWT_SECRET") or (data_dir / "secret").read_text().strip()
    typer.echo(dev_token(secret, tenant, scopes.replace(",", " ").split(), ttl))


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    argv: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    wait: Annotated[bool, typer.Option(help="Print its output as it runs, exit with its code.")] = False,
    timeout: Annotated[float, typer.Option(help="Job execution timeout in seconds.")] = 3600.0,
    pool: Annotated[str | None, typer.Option(help="Run in this worker pool.")] = None,
    env: Annotated[list[str], typer.Option("--env", "-e", help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, typer.Option(help="Submitting the same key twice makes one job.")] = None,
    interactive: Annotated[bool, typer.Option(help="Keep its stdin open for `xrunner attach`.")] = False,
    tty: Annotated[bool, typer.Option(help="Give it a terminal (implies --interactive).")] = False,
    realtime: RealtimeUrl = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Submit a command as a job: `xrunner submit --wait -- echo hi`."""
    spec = JobSpec(
        workload=ProcessWorkload(argv=argv, env=dict(e.split("=", 1) for e in env), interactive=interactive, tty=tty),
        resources=Resources(pool=pool),
        timeout_s=timeout,
    )
    client = gateway(data_dir)
    try:
        job = client.submit(spec, idempotency_key).job
        typer.echo(f"{job.id} {job.state}", err=wait)
        if wait:
            view = follow(client, edge(data_dir, realtime), job.id, _show)
            typer.echo(f"{view.id} {view.state} exit={view.exit_code}", err=True)
            raise typer.Exit(0 if view.state == "succeeded" else (view.exit_code or 1))
    except ApiError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def get(
    job_id: str,
    at: Annotated[str | None, typer.Option(help="As of this event: a sequence (see `events --job`) or a time.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Show a job as JSON; with --at, as it was at that point of its history."""
    with api_errors():
        typer.echo(codec.encode(gateway(data_dir).get(job_id, at)).decode())


@app.command()
def logs(
    job_id: str,
    keep_following: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    realtime: RealtimeUrl = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print a job's output; with -f, as it is written (pushed by the realtime edge) until the job ends."""
    client = gateway(data_dir)
    with api_errors():
        if keep_following:
            follow(client, edge(data_dir, realtime), job_id, _show)
        else:
            sys.stdout.write(client.logs(job_id).text)


def _show(message: Sse) -> None:
    """Output the job wrote to stderr goes to ours; the rest to stdout."""
    out = sys.stderr if message.event == "stderr" else sys.stdout
    out.write(message.data)
    out.flush()


@app.command()
def cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in the job's history.")] = "",
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Ask a job to stop; asking again is harmless."""
    with api_errors():
        view = gateway(data_dir).cancel(job_id, reason)
    typer.echo(f"{view.id} {view.state} cancel requested")


@app.command()
def rerun(job_id: str, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Submit a new job with the same spec as JOB_ID; prints the new job's id and state."""
    with api_errors():
        job = gateway(data_dir).rerun(job_id).job
    typer.echo(f"{job.id} {job.state}")


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

    api, _ = connection(data_dir)
    secret = os.environ.get("XR_JWT_SECRET") or (data_dir / "secret").read_text().strip()
    tokens = [dev_token(secret, f"bench{i}", ["jobs:read", "jobs:write"]) for i in range(tenants)]
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
