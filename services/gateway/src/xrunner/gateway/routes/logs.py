"""`GET /v1/jobs/{id}/logs`: the output of a job's current attempt from a byte offset, as text, JSON or NDJSON."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, get
from litestar.params import Parameter

from xrunner.contracts import codec, lifecycle
from xrunner.contracts.api import JobLog
from xrunner.gateway.dependencies import JobsService, Stream, Who
from xrunner.gateway.routes.jobs import JOB_ID, find_job
from xrunner.servicekit.attemptlog import Output, stored_output
from xrunner.servicekit.guards import READ


def _ndjson(outputs: list[Output], offset: int, complete: bool) -> Response[bytes]:
    lines = [codec.encode({"stream": out.stream, "offset": out.offset,
                           "text": out.data.decode("utf-8", errors="replace")}) for out in outputs]
    end = outputs[-1].end if outputs else offset
    lines.append(codec.encode({"next_offset": end, "complete": complete}))
    headers = {"X-Next-Offset": str(end), "X-Log-Complete": str(complete).lower()}
    return Response(b"\n".join(lines) + b"\n", headers=headers, media_type="application/x-ndjson")


@get("/v1/jobs/{job_id:str}/logs", media_type="text/plain; charset=utf-8", opt=READ, tags=["jobs"])
async def get_logs(
    who: Who,
    service: JobsService,
    js: Stream,
    job_id: JOB_ID,
    offset: Annotated[int, Parameter(ge=0)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=16 * 1024 * 1024)] = 4 * 1024 * 1024,
    format: Annotated[str, Parameter(pattern="^(text|json|ndjson)$")] = "text",
) -> Response[Any]:
    """The output of the job's current attempt from byte `offset`: text, JSON with `next_offset`, or NDJSON
    chunks (`{"stream", "offset", "text"}` lines, then a `{"next_offset", "complete"}` line)."""
    view = await find_job(service, who, job_id)
    outputs, cut = await stored_output(js, view.tenant, view.id, view.attempt, offset, limit)
    complete = lifecycle.is_terminal(view.state) and not cut
    if format == "ndjson":
        return _ndjson(outputs, offset, complete)
    raw = b"".join(out.data for out in outputs)
    log = JobLog(job_id=view.id, offset=offset, next_offset=offset + len(raw),
                 text=raw.decode("utf-8", errors="replace"), complete=complete)
    headers = {"X-Next-Offset": str(log.next_offset), "X-Log-Complete": str(log.complete).lower()}
    if format == "json":
        return Response(log, headers=headers, media_type="application/json")
    return Response(log.text, headers=headers, media_type="text/plain; charset=utf-8")
