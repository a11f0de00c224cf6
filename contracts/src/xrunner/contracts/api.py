"""Bodies of the public HTTP API: requests are imperative, responses are views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from xrunner.contracts.spec import NO_NUL, JobSpec

JobState = Literal[
    "submitted",
    "queued",
    "rejected",
    "dispatched",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "expired",
]
TERMINAL_STATES: frozenset[str] = frozenset({"rejected", "succeeded", "failed", "timed_out", "cancelled", "expired"})


class JobView(msgspec.Struct, kw_only=True):
    """A job as clients see it."""

    id: str
    tenant: str
    state: JobState
    attempt: int
    spec: JobSpec
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    worker_id: str | None = None
    pool: str | None = None
    sandbox: str | None = None
    cancel_requested: bool = False
    retry_after_s: float | None = None
    position: int | None = None
    eta_s: float | None = None
    not_before: datetime | None = None
    retries_used: int = 0
    version: int = 0
    artifacts: int = 0  # stored and not yet expired, over all attempts; the artifacts API lists them


class JobAccepted(msgspec.Struct, kw_only=True):
    """The answer to a submit: the job and where admission left it."""

    job: JobView
    created: bool = True


class JobLog(msgspec.Struct, kw_only=True):
    """A job's output from `offset` (bytes); `next_offset` resumes after it."""

    job_id: str
    offset: int
    next_offset: int
    text: str
    complete: bool


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details with a stable `code`."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    field: str | None = None
    retry_after_s: float | None = None
    cause: str | None = None
    scope: str | None = None


class Whoami(msgspec.Struct, kw_only=True):
    subject: str
    tenant: str
    scopes: list[str]


class ConfigureTenant(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`PUT /v1/tenants/{tenant}`: a tenant's share and limits."""

    weight: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 1.0
    max_inflight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    max_queued: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 10_000
    submit_rate_per_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 100.0
    artifact_ttl_s: Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86_400)] = 7 * 86_400.0


class CancelJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/jobs/{id}/cancel`."""

    reason: Annotated[str, msgspec.Meta(max_length=1024, pattern=NO_NUL)] = ""


class HistoryEntry(msgspec.Struct, kw_only=True):
    """One event of a job's history with its stream sequence."""

    seq: int
    type: str
    occurred_at: datetime
    attempt: int
    event: dict[str, object]


class SubmitBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/jobs/batch`: up to 1,000 specs submitted together."""

    jobs: Annotated[list[JobSpec], msgspec.Meta(min_length=1, max_length=1000)]


class BatchItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One spec's outcome, at its index in the request: the job, or the problem that refused it."""

    index: int
    job: JobView | None = None
    problem: Problem | None = None


class BatchAccepted(msgspec.Struct, kw_only=True):
    results: list[BatchItem]


class JobList(msgspec.Struct, kw_only=True):
    """A page of jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""

    jobs: list[JobView]
    next_cursor: str | None = None


class StreamTicket(msgspec.Struct, kw_only=True):
    """`POST /v1/stream-tickets`: a one-time credential for EventSource/WebSocket (`?ticket=`), valid ≤ 60 s."""

    ticket: str
    expires_at: datetime


PreviewKind = Literal["text", "image", "pdf", "archive", "none"]


class PreviewEntry(msgspec.Struct, kw_only=True):
    """One member of an archive: its path inside it and its size in bytes."""

    name: str
    size: int


class ArtifactPreview(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a UI shows without downloading the file. `kind` none says why in `reason`. In lists and metadata
    `text` and `entries` are left out (`GET /v1/artifacts/{id}/preview` has them); `thumbnail_url` is signed like
    the download URL and expires with it."""

    kind: PreviewKind
    reason: str = ""
    text: str | None = None
    line_count: int | None = None
    page_count: int | None = None
    entries: list[PreviewEntry] = []
    truncated: bool = False
    thumbnail_url: str | None = None
    thumbnail_content_type: str | None = None


class ArtifactView(msgspec.Struct, kw_only=True):
    """A stored file of a job's attempt, with a signed download URL valid until `url_expires_at` (≤ 300 s).
    `preview` is null until the artifacts service has derived one."""

    id: str
    job_id: str
    attempt: int
    name: str
    size: int
    sha256: str
    content_type: str
    stored_at: datetime
    expires_at: datetime
    url: str
    url_expires_at: datetime
    preview: ArtifactPreview | None = None
