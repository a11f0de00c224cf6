"""Subject and stream names: the only place that knows how xrunner lays out NATS."""

from __future__ import annotations

from typing import NamedTuple

from xrunner.contracts.events import Event, JobEvent, TenantConfigured, WorkerStarted, WorkerStopped, type_token

EVENTS_STREAM = "XR_EVENTS"
RUN_STREAM = "XR_RUN"
LOGS_STREAM = "XR_LOGS"
DEAD_STREAM = "XR_DEAD"
WORKERS_BUCKET = "xr_workers"
STATS_BUCKET = "xr_stats"
LEASES_BUCKET = "xr_leases"
TICKETS_BUCKET = "xr_tickets"

EVENTS_ALL = "xr.evt.>"
JOB_EVENTS_ALL = "xr.evt.job.>"
RUN_ALL = "xr.run.>"
LOGS_ALL = "xr.log.>"
DEAD_ALL = "xr.dead.>"


def job_events(tenant: str = "*", job_id: str = "*", token: str = "*") -> str:
    """`xr.evt.job.<tenant>.<job_id>.<type>`; wildcards by default."""
    return f"xr.evt.job.{tenant}.{job_id}.{token}"


class JobEventSubject(NamedTuple):
    """The parts of a job event's subject."""

    tenant: str
    job_id: str
    token: str  # the event type's token: `submitted`, `queued`, ...


def parse_job_event(subject: str) -> JobEventSubject:
    """The inverse of `job_events`: the tenant, job id and type token of `xr.evt.job.<tenant>.<job_id>.<type>`;
    ValueError for any other subject."""
    parts = subject.split(".")
    if len(parts) != 6 or parts[:3] != ["xr", "evt", "job"]:
        raise ValueError(f"not a job event subject: {subject!r}")
    return JobEventSubject(parts[3], parts[4], parts[5])


def job_history(tenant: str, job_id: str) -> str:
    """Every event of one job: the compare-and-set scope of its appends."""
    return f"xr.evt.job.{tenant}.{job_id}.*"


def tenant_events(tenant: str = "*", token: str = "*") -> str:
    return f"xr.evt.tenant.{tenant}.{token}"


def worker_events(worker_id: str = "*", token: str = "*") -> str:
    return f"xr.evt.worker.{worker_id}.{token}"


def event_subject(event: Event) -> str:
    """The subject an event is appended on."""
    token = type_token(type(event))
    if isinstance(event, JobEvent):
        return job_events(event.tenant, event.job_id, token)
    if isinstance(event, TenantConfigured):
        return tenant_events(event.tenant, token)
    if isinstance(event, (WorkerStarted, WorkerStopped)):
        return worker_events(event.worker_id, token)
    raise TypeError(f"no subject for {type(event).__name__}")


def run_queue(pool: str = "*") -> str:
    """The work queue a pool's workers pull from."""
    return f"xr.run.{pool}"


def job_logs(tenant: str = "*", job_id: str = "*") -> str:
    """One job's log chunks."""
    return f"xr.log.{tenant}.{job_id}"


def job_stdin(job_id: str) -> str:
    """Core NATS subject an interactive job reads its stdin from: each message's payload is written to the job's
    stdin as is; a message with header `Xr-Resize: <rows>x<cols>` resizes a tty job's terminal instead, and one
    with `Xr-Eof: 1` closes its stdin."""
    return f"xr.stdin.{job_id}"


def dead_letters(projection: str = "*", tenant: str = "*", job_id: str = "*") -> str:
    """`xr.dead.<projection>.<tenant>.<job_id>`: an event `projection` could not apply (the projection's dots become
    underscores; `_` stands for the tenant and job of an event that is not a job's)."""
    return f"xr.dead.{projection.replace('.', '_')}.{tenant}.{job_id}"


STDIN_RESIZE_HEADER = "Xr-Resize"
STDIN_EOF_HEADER = "Xr-Eof"
