"""`xrunner why JOB`: why a job ran when and where it did (each recorded decision, a dispatch with its tenant's
standing, the competing tenants, how placement saw every pool and the jobs that went before it), or, while it waits,
why and which of your jobs are ahead of it."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from xrunner.cli.session import DEFAULT_DATA, DataDir, JsonFlag, api_errors, app, gateway
from xrunner.contracts import codec
from xrunner.contracts.decisions import Decision, DispatchWhy, JobDecisions, Standing


@app.command()
def why(job_id: str, as_json: JsonFlag = False, data_dir: DataDir = DEFAULT_DATA) -> None:
    """Say why a job ran when it did, which jobs went before it and why; for a waiting job, what is ahead of it."""
    with api_errors():
        answer = gateway(data_dir).decisions(job_id)
    if as_json:
        typer.echo(codec.encode(answer).decode())
        return
    show(Console(), answer)


def show(console: Console, answer: JobDecisions) -> None:
    console.print(f"[bold]{answer.job_id}[/bold] {answer.state}", highlight=False)
    for decision in answer.decisions:
        when = decision.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
        waited = f" after {decision.waited_s:g}s in the queue" if decision.waited_s is not None else ""
        console.print(f"{decision.seq:>8}  {when}  [bold]{decision.kind}[/bold]{waited}: {decision.summary}",
                      highlight=False)
        if decision.why is not None:
            _dispatch(console, decision, decision.why)
    if answer.waiting_reason is not None:
        where = f" at position {answer.position}" if answer.position is not None else ""
        console.print(f"waiting{where}: {answer.waiting_reason} — {answer.waiting_detail}", highlight=False)
        for ahead in answer.ahead:
            console.print(f"  ahead: {ahead.job_id} (position {ahead.position}, {ahead.reason})", highlight=False)


def _dispatch(console: Console, decision: Decision, why: DispatchWhy) -> None:
    console.print(_standings([why.tenant, *why.competing], why.competing_more))
    console.print(_pools(why))
    for went in decision.went_before:
        job = f" {went.job_id}" if went.job_id else ""
        console.print(f"  went before: {went.tenant}{job} to {went.pool} at seq {went.seq}: {went.reason}",
                      highlight=False)
    if decision.went_before_more:
        console.print(f"  ... and {decision.went_before_more} earlier dispatches", highlight=False)


def _standings(standings: list[Standing], more: int) -> Table:
    title = "tenants as the plan ranked them (first: this job's)" + (f"; {more} more" if more else "")
    table = Table(title=title, title_justify="left")
    for column in ("tenant", "idle", "weighted share", "running", "usage", "weight", "in flight", "queued"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for s in standings:
        table.add_row(s.tenant, "yes" if s.idle else "", f"{s.rank_share:.4f}", f"{s.running_share:.4f}",
                      f"{s.usage_share:.4f}", f"{s.weight:g}", f"{s.inflight}/{s.max_inflight}", str(s.queued))
    return table


def _pools(why: DispatchWhy) -> Table:
    counts = [f"filtered {why.filtered}" if why.filtered else "", f"exhausted {why.exhausted}" if why.exhausted else ""]
    title = (f"placement: {why.pools_evaluated} pools ({why.workers_evaluated} workers) evaluated"
             + "".join(f"; {c}" for c in counts if c))
    table = Table(title=title, title_justify="left")
    for column in ("pool", "outcome", "reason", "free/slots", "workers", "cpu", "memory", "gpu"):
        table.add_column(column, justify="left" if column in ("pool", "outcome", "reason") else "right")
    for p in why.pools:
        reason = f"{p.dimension}: {p.reason}" if p.dimension else p.reason
        table.add_row(p.pool, p.outcome, reason, f"{p.free}/{p.slots}", str(p.workers), str(p.cpu_millis),
                      str(p.memory_mib), str(p.gpu))
    return table
