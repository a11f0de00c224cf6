"""The edge's size limits on a job spec, in encoded bytes: every accepted spec fits in the NATS messages that carry it
(`job.submitted`, the `RunJob` work item) and every argv and environment string can be passed to execve.

The spec's own types bound each string in characters, which cannot bound a total; these limits are checked where a
spec is accepted, never when an event is decoded, so lowering one never makes a stored event undecodable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xrunner.contracts import codec
from xrunner.contracts.spec import DockerWorkload, JobSpec, ProcessWorkload

KIB = 1024
NATS_MAX_PAYLOAD = 1024 * KIB  # nats-server's default `max_payload`; xrunner's embedded server keeps it
MAX_SPEC_BYTES = 512 * KIB  # the encoded spec; its events add a few KiB at most (ids, times, subject)
MAX_STDIN_BYTES = 256 * KIB
MAX_ARGV_BYTES = 256 * KIB  # all argv strings together
MAX_ENV_BYTES = 256 * KIB  # all `NAME=value` strings together
MAX_ARG_BYTES = 128 * KIB - 1  # Linux's MAX_ARG_STRLEN (one argv or env string) less its NUL terminator

BY_REFERENCE = ("put large inputs in an object store (or an artifact of an earlier job) and fetch them inside "
                "the job")


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The first part of a spec over its limit: a JSON path, its size and limit in bytes, and what to do instead."""

    field: str
    size: int
    limit: int
    advice: str

    def detail(self) -> str:
        return f"{self.field} is {self.size} bytes; the limit is {self.limit} bytes: {self.advice}"


def too_large(spec: JobSpec, at: str = "$") -> TooLarge | None:
    """The first limit `spec` (at JSON path `at`) exceeds, or None when it fits every one."""
    found = _workload(spec.workload, f"{at}.workload")
    if found is not None:
        return found
    size = len(codec.encode(spec))
    return TooLarge(at, size, MAX_SPEC_BYTES, BY_REFERENCE) if size > MAX_SPEC_BYTES else None


def _workload(workload: ProcessWorkload | DockerWorkload, at: str) -> TooLarge | None:
    argv = ((f"{at}.argv[{i}]", arg) for i, arg in enumerate(workload.argv))
    env = ((f"{at}.env.{name}", f"{name}={value}") for name, value in workload.env.items())
    stdin = workload.stdin if isinstance(workload, ProcessWorkload) else None
    return (
        _strings(argv, f"{at}.argv", MAX_ARGV_BYTES, "pass large data through stdin or a file")
        or _strings(env, f"{at}.env", MAX_ENV_BYTES, "pass large values through stdin or a file")
        or _over(len(stdin.encode()) if stdin else 0, f"{at}.stdin", MAX_STDIN_BYTES, BY_REFERENCE)
    )


def _strings(strings: Iterable[tuple[str, str]], at: str, total_limit: int, advice: str) -> TooLarge | None:
    """Each (path, string) within execve's limit for one string, and all of them within `total_limit`."""
    total = 0
    for path, text in strings:
        size = len(text.encode())
        if size > MAX_ARG_BYTES:
            return TooLarge(path, size, MAX_ARG_BYTES, advice)
        total += size
    return _over(total, at, total_limit, advice)


def _over(size: int, at: str, limit: int, advice: str) -> TooLarge | None:
    return TooLarge(at, size, limit, advice) if size > limit else None
