"""What the gateway refuses in a request body beyond what the contracts' types say: JSON nested deeper than the
decoder follows (400 `too_deep`), bytes that are not JSON (400), and job specs over the edge's size limits
(413 `spec_too_large`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from xrunner.contracts.limits import too_large
from xrunner.contracts.spec import JobSpec
from xrunner.servicekit.problems import ProblemError


class JsonRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded as litestar does, except that nesting too deep for the decoder's
    stack is the client's error, not the server's (litestar decodes the body untyped before converting it)."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError as exc:
            raise ProblemError(400, "too_deep", "The JSON body is nested too deeply",
                               detail="no request body of this API nests more than a few levels") from exc
        except SerializationException as exc:
            hint = "strings must be UTF-8; a \\u escape may not be a lone surrogate"
            raise ProblemError(400, "invalid_request", "The body is not valid JSON", detail=f"{exc} ({hint})") from exc


def refuse_too_large(spec: JobSpec, at: str = "$") -> None:
    """Raise 413 `spec_too_large` naming the spec's first field over its limit; `at` is the spec's JSON path."""
    found = too_large(spec, at)
    if found is not None:
        raise ProblemError(413, "spec_too_large", "The job spec is too large", detail=found.detail(),
                           field=found.field)


def refuse_any_too_large(specs: Sequence[JobSpec]) -> None:
    """`refuse_too_large` for each spec of a batch (`$.jobs[i]`): one spec over its limit refuses the batch."""
    for i, spec in enumerate(specs):
        refuse_too_large(spec, f"$.jobs[{i}]")
