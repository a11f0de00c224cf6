"""The job spec: what a client asks xrunner to run, with its limits and policies."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Tokens that end up inside NATS subjects must not contain '.', '*', '>' or whitespace.
Token = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
LabelKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")]
# Postgres text and jsonb cannot store U+0000 and execve cannot pass it, so no free-form string of a spec holds one:
# a spec that is accepted can be stored by every projection and run by every sandbox.
NO_NUL = r"^[^\x00]*$"
LabelValue = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)]
Arg = Annotated[str, msgspec.Meta(max_length=65_536, pattern=NO_NUL)]
EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")]
EnvValue = Annotated[str, msgspec.Meta(max_length=65_536, pattern=NO_NUL)]
Argv = Annotated[list[Arg], msgspec.Meta(min_length=1, max_length=4096)]
Env = Annotated[dict[EnvName, EnvValue], msgspec.Meta(max_length=1024)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=7 * 24 * 3600)]
ExitCode = Annotated[int, msgspec.Meta(ge=0, le=255)]
Glob = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL)]


class Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every spec part: immutable, strict about unknown fields."""


class ProcessWorkload(Spec, tag="process", tag_field="kind", frozen=True):
    """A command run directly in the worker's process sandbox."""

    argv: Argv
    env: Env = msgspec.field(default_factory=dict)
    cwd: Annotated[str, msgspec.Meta(max_length=4096, pattern=NO_NUL)] | None = None
    # Text only, without NUL (binary input goes by reference); `limits.too_large` caps it lower at the edge.
    stdin: Annotated[str, msgspec.Meta(max_length=1_048_576, pattern=NO_NUL)] | None = None
    network: bool = False
    interactive: bool = False  # stdin stays open and is fed from core NATS `xr.stdin.<job_id>` (attach)
    tty: bool = False  # a pseudo-terminal for stdin/stdout/stderr (implies interactive)


class DockerWorkload(Spec, tag="docker", tag_field="kind", frozen=True):
    """A container run by the worker's docker sandbox."""

    image: Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=NO_NUL)]
    argv: Annotated[list[Arg], msgspec.Meta(max_length=4096)] = msgspec.field(default_factory=list)
    env: Env = msgspec.field(default_factory=dict)
    interactive: bool = False
    tty: bool = False
    keep_container: bool = False
    network: bool = False


Workload = ProcessWorkload | DockerWorkload


def workload_kind(workload: Workload) -> str:
    """`process` or `docker`: the workload's tag, which decides the sandbox that runs it."""
    tag = type(workload).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def is_interactive(workload: Workload) -> bool:
    """Whether the job's stdin stays open for attach (a tty implies it)."""
    return workload.interactive or workload.tty


class Resources(Spec, frozen=True):
    """Resource hints used for placement and fair share; the sandbox enforces them."""

    cpu_millis: Annotated[int, msgspec.Meta(ge=1, le=1_024_000)] = 1000
    memory_mib: Annotated[int, msgspec.Meta(ge=1, le=4_194_304)] = 256
    gpu: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    disk_mib: Annotated[int, msgspec.Meta(ge=0, le=16_777_216)] = 1024
    pool: Token | None = None


class RetryPolicy(Spec, frozen=True):
    """How failed attempts are retried. Worker loss never consumes `max_attempts`."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    backoff_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 300.0
    retry_on_exit_codes: Annotated[list[ExitCode], msgspec.Meta(max_length=256)] = msgspec.field(default_factory=list)
    retry_on_worker_lost: bool = True


class ArtifactSpec(Spec, frozen=True):
    """Which files of the workspace are kept after the job ends."""

    globs: Annotated[list[Glob], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=lambda: ["out/**"])


class JobSpec(Spec, frozen=True):
    """Everything needed to run a job; immutable once submitted."""

    workload: Workload
    resources: Resources = msgspec.field(default_factory=Resources)
    timeout_s: Seconds = 3600.0
    queue_timeout_s: Seconds | None = None
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    labels: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=dict)
    artifacts: ArtifactSpec = msgspec.field(default_factory=ArtifactSpec)
    name: Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)] | None = None


Sandbox = Literal["process", "docker", "none"]
