"""A small typed client of the gateway's REST API, shared by the CLI's commands."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from xrunner.contracts import codec
from xrunner.contracts.api import (
    CancelJob,
    ConfigureTenant,
    HistoryEntry,
    JobAccepted,
    JobList,
    JobLog,
    JobView,
    Problem,
)
from xrunner.contracts.decisions import JobDecisions
from xrunner.contracts.spec import JobSpec
from xrunner.contracts.stats import DryRun, Explain, StatsView, TenantLimits

_JSON = {"Content-Type": "application/json"}


class ApiError(Exception):
    """The gateway answered with a problem document."""

    def __init__(self, status: int, problem: Problem | None, text: str) -> None:
        self.status, self.problem = status, problem
        super().__init__(
            f"{status} {problem.code}: {problem.detail or problem.title}" if problem else f"{status} {text}"
        )


def problem_error(status: int, body: bytes) -> ApiError:
    """The error of an answer with `status`: its problem document when the body is one."""
    try:
        problem: Problem | None = codec.decode(body, Problem)
    except msgspec.MsgspecError:
        problem = None
    return ApiError(status, problem, body.decode(errors="replace"))


class Client:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, None, f"cannot reach {self.http.base_url}: {exc}") from exc
        return self._check(response)

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise problem_error(response.status_code, response.content)
        return response

    def submit(self, spec: JobSpec, idempotency_key: str | None = None) -> JobAccepted:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._send(
            "POST", "/v1/jobs", content=codec.encode(spec), headers={**_JSON, **headers}
        )
        return codec.decode(response.content, JobAccepted)

    def list_jobs(self, states: list[str], labels: list[str], limit: int) -> JobList:
        params: dict[str, Any] = {"state": states, "label": labels, "limit": limit}
        return codec.decode(self._send("GET", "/v1/jobs", params=params).content, JobList)

    def rerun(self, job_id: str) -> JobAccepted:
        return codec.decode(self._send("POST", f"/v1/jobs/{job_id}/rerun").content, JobAccepted)

    def get(self, job_id: str, as_of: str | None = None) -> JobView:
        params = {"as_of": as_of} if as_of is not None else {}
        return codec.decode(self._send("GET", f"/v1/jobs/{job_id}", params=params).content, JobView)

    def logs(self, job_id: str, offset: int = 0) -> JobLog:
        response = self._send("GET", f"/v1/jobs/{job_id}/logs", params={"offset": offset, "format": "json"})
        return codec.decode(response.content, JobLog)

    def cancel(self, job_id: str, reason: str = "") -> JobView:
        response = self._send(
            "POST", f"/v1/jobs/{job_id}/cancel", content=codec.encode(CancelJob(reason=reason)), headers=_JSON
        )
        return codec.decode(response.content, JobView)

    def events(self, job_id: str) -> list[HistoryEntry]:
        return codec.decode(self._send("GET", f"/v1/jobs/{job_id}/events").content, list[HistoryEntry])

    def explain(self, job_id: str) -> Explain:
        return codec.decode(self._send("GET", f"/v1/jobs/{job_id}/explain").content, Explain)

    def decisions(self, job_id: str) -> JobDecisions:
        return codec.decode(self._send("GET", f"/v1/jobs/{job_id}/decisions").content, JobDecisions)

    def dry_run(self, spec: JobSpec) -> DryRun:
        response = self._send("POST", "/v1/jobs/dry-run", content=codec.encode(spec), headers=_JSON)
        return codec.decode(response.content, DryRun)

    def stats(self) -> StatsView:
        return codec.decode(self._send("GET", "/v1/stats").content, StatsView)

    def get_tenant(self, tenant: str) -> TenantLimits:
        return codec.decode(self._send("GET", f"/v1/tenants/{tenant}").content, TenantLimits)

    def set_tenant(self, tenant: str, limits: ConfigureTenant) -> TenantLimits:
        response = self._send("PUT", f"/v1/tenants/{tenant}", content=codec.encode(limits), headers=_JSON)
        return codec.decode(response.content, TenantLimits)
