"""Every fact xrunner records in its log, as tagged msgspec Structs.

Rules: events are past tense and frozen; evolve by adding fields with defaults; never rename, retype or reuse a
tag; a breaking change is a `.v2` beside the `.v1`. Each docstring names the one service that writes the event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from xrunner.contracts.decisions import DispatchWhy
from xrunner.contracts.spec import JobSpec, Sandbox

RejectCause = Literal["tenant_queue_full", "global_queue_full", "rate_limited", "invalid"]
RejectScope = Literal["tenant", "global"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """What every event carries."""

    event_id: str
    occurred_at: datetime


class JobEvent(Event, frozen=True, kw_only=True):
    """An event of one job's history; `attempt` is 0 until the first dispatch."""

    tenant: str
    job_id: str
    attempt: int = 0


class JobSubmitted(JobEvent, tag="job.submitted.v1", frozen=True):
    """A client asked for a job. Writer: gateway."""

    spec: JobSpec
    submitted_by: str = ""
    idempotency_key: str | None = None
    rerun_of: str | None = None


class JobQueued(JobEvent, tag="job.queued.v1", frozen=True):
    """Admission accepted the job (or a retry put it back). Writer: scheduler."""

    pool: str
    position: int = 0
    eta_s: float | None = None


class JobRejected(JobEvent, tag="job.rejected.v1", frozen=True):
    """Admission refused the job; the client may retry after `retry_after_s`. Writer: scheduler."""

    cause: RejectCause
    scope: RejectScope
    retry_after_s: float
    detail: str = ""


class JobDispatched(JobEvent, tag="job.dispatched.v1", frozen=True):
    """Attempt `attempt` was released into `xr.run.<pool>`. Writer: scheduler.

    `retries_used` counts the earlier attempts that failed and were retried (worker losses do not count); `why`
    records the plan's and placement's inputs and outcome (absent from events written before it existed)."""

    pool: str
    retries_used: int = 0
    why: DispatchWhy | None = None


class JobStarted(JobEvent, tag="job.started.v1", frozen=True):
    """A worker began attempt `attempt`. Writer: worker."""

    worker_id: str
    sandbox: Sandbox


class JobSucceeded(JobEvent, tag="job.succeeded.v1", frozen=True):
    """The attempt's command exited 0. Writer: worker."""

    exit_code: int = 0
    duration_s: float = 0.0


class JobFailed(JobEvent, tag="job.failed.v1", frozen=True):
    """The attempt ended badly: a non-zero exit, a signal or a sandbox error. Writer: worker; the scheduler when it
    abandons the job.

    `final` is false when the retry policy sends the job back to the queue (the scheduler then appends
    `job.retry_scheduled`). `abandoned` is true when the scheduler gave the whole job up because one of its events
    could not be applied by a projection: it ends the job from any state that is not terminal, not only while the
    attempt is live."""

    exit_code: int | None = None
    reason: str = ""
    duration_s: float = 0.0
    final: bool = True
    abandoned: bool = False


class JobTimedOut(JobEvent, tag="job.timed_out.v1", frozen=True):
    """The attempt ran past `timeout_s` and was stopped. Writer: worker (scheduler as a backstop)."""

    timeout_s: float


class JobCancelRequested(JobEvent, tag="job.cancel_requested.v1", frozen=True):
    """Somebody asked to stop the job. Writer: gateway."""

    requested_by: str = ""
    reason: str = ""


class JobCancelled(JobEvent, tag="job.cancelled.v1", frozen=True):
    """The job stopped because of a cancel request. Writer: worker if it ran, scheduler if it never started."""

    detail: str = ""


class JobLost(JobEvent, tag="job.lost.v1", frozen=True):
    """The worker running the attempt stopped heartbeating. Writer: scheduler."""

    worker_id: str
    detail: str = ""


class JobRetryScheduled(JobEvent, tag="job.retry_scheduled.v1", frozen=True):
    """The job goes back to the queue after `not_before`. Writer: scheduler."""

    not_before: datetime
    reason: str = ""


class JobExpired(JobEvent, tag="job.expired.v1", frozen=True):
    """The job waited in the queue past `queue_timeout_s`. Writer: scheduler."""

    waited_s: float


class JobAttached(JobEvent, tag="job.attached.v1", frozen=True):
    """Somebody attached a terminal to the job (an audit record). Writer: realtime."""

    subject: str


class ArtifactStored(JobEvent, tag="artifact.stored.v1", frozen=True):
    """A file of the attempt's workspace was saved in the object store. Writer: worker."""

    artifact_id: str
    name: str
    key: str
    size: int
    sha256: str
    content_type: str


class ArtifactExpired(JobEvent, tag="artifact.expired.v1", frozen=True):
    """An artifact was removed by retention. Writer: artifacts."""

    artifact_id: str


class ArchiveEntry(msgspec.Struct, frozen=True):
    """One member of a zip or tar archive, as its listing declares it (never extracted)."""

    name: str
    size: int


class ArtifactPreviewed(JobEvent, tag="artifact.previewed.v1", frozen=True):
    """The artifacts service derived a preview of a stored artifact. Writer: artifacts.

    `kind` says which fields are set: text (`text`, `line_count`), image (`thumbnail_*`), pdf (`page_count`,
    `thumbnail_*`), archive (`entries`); none carries the `reason` there is no preview. `truncated`: the text or the
    entry list was cut at its cap."""

    artifact_id: str
    kind: Literal["text", "image", "pdf", "archive", "none"]
    reason: str = ""
    text: str | None = None
    line_count: int | None = None
    thumbnail_key: str | None = None
    thumbnail_content_type: str | None = None
    page_count: int | None = None
    entries: list[ArchiveEntry] = msgspec.field(default_factory=list)
    truncated: bool = False


class TenantConfigured(Event, tag="tenant.configured.v1", frozen=True):
    """An admin set a tenant's share and limits. Writer: gateway."""

    tenant: str
    weight: float = 1.0
    max_inflight: int = 100
    max_queued: int = 10_000
    submit_rate_per_s: float = 100.0
    configured_by: str = ""
    artifact_ttl_s: float = 7 * 86_400.0  # how long the tenant's artifacts are kept after they are stored


class WorkerStarted(Event, tag="worker.started.v1", frozen=True):
    """A worker process came up. Writer: worker."""

    worker_id: str
    pool: str
    slots: int
    version: str = ""


class WorkerStopped(Event, tag="worker.stopped.v1", frozen=True):
    """A worker process shut down cleanly. Writer: worker."""

    worker_id: str
    reason: str = ""


JobEvents = (
    JobSubmitted
    | JobQueued
    | JobRejected
    | JobDispatched
    | JobStarted
    | JobSucceeded
    | JobFailed
    | JobTimedOut
    | JobCancelRequested
    | JobCancelled
    | JobLost
    | JobRetryScheduled
    | JobExpired
    | JobAttached
    | ArtifactStored
    | ArtifactExpired
    | ArtifactPreviewed
)
AnyEvent = JobEvents | TenantConfigured | WorkerStarted | WorkerStopped

ALL_EVENT_TYPES: tuple[type[Event], ...] = (
    JobSubmitted,
    JobQueued,
    JobRejected,
    JobDispatched,
    JobStarted,
    JobSucceeded,
    JobFailed,
    JobTimedOut,
    JobCancelRequested,
    JobCancelled,
    JobLost,
    JobRetryScheduled,
    JobExpired,
    JobAttached,
    ArtifactStored,
    ArtifactExpired,
    ArtifactPreviewed,
    TenantConfigured,
    WorkerStarted,
    WorkerStopped,
)


def tag_of(event_type: type[Event]) -> str:
    """The wire tag of an event type, e.g. `job.started.v1`."""
    tag = event_type.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def type_token(event_type: type[Event]) -> str:
    """The subject token of an event type: `started` for job events, `artifact_stored` for artifact ones."""
    aggregate, name, _version = tag_of(event_type).split(".")
    return name if aggregate in ("job", "tenant", "worker") else f"{aggregate}_{name}"
