"""The metrics the alerts read that are counted outside a request or a fold: HTTP responses by status class (every
service's server counts them), and workers that go silent (the scheduler counts each once, not a clean stop)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from xrunner.contracts import codec
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.scheduler.workers import Workers
from xrunner.servicekit.http import counted


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def responding(status: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_each_http_response_is_counted_by_its_status_class_and_other_scopes_are_not() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    before = {code: sample("xrunner_http_responses_total", {"code": code}) for code in ("2xx", "5xx")}
    for status in (200, 204, 503):
        await counted(responding(status))({"type": "http"}, receive, send)
    await counted(responding(500))({"type": "lifespan"}, receive, send)  # not a request: not counted
    assert sample("xrunner_http_responses_total", {"code": "2xx"}) == before["2xx"] + 2
    assert sample("xrunner_http_responses_total", {"code": "5xx"}) == before["5xx"] + 1
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200, 204, 503, 500]


def beat(worker_id: str, pool: str = "gpu") -> bytes:
    return codec.encode(WorkerHeartbeat(worker_id=worker_id, pool=pool, slots=4, free_slots=4, cpu_millis=1000,
                                        memory_mib=1024, gpu=0, at=datetime.now(UTC)))


def test_a_worker_silent_past_the_lease_is_counted_once_and_a_clean_stop_not_at_all() -> None:
    # A lease that has always run out: every worker is silent as soon as it was heard.
    workers = Workers(None, asyncio.Event(), lease_s=-1.0)  # type: ignore[arg-type]
    before = sample("xrunner_workers_lost_total", {"pool": "gpu"})
    workers._note("w1", beat("w1"))
    workers._note("w2", beat("w2"))
    workers._note("w2", None)  # w2 stopped cleanly: its key was deleted
    assert workers.live() == []
    assert workers.live() == []
    assert sample("xrunner_workers_lost_total", {"pool": "gpu"}) == before + 1
    live = Workers(None, asyncio.Event(), lease_s=60.0)  # type: ignore[arg-type]
    live._note("w3", beat("w3"))
    assert [hb.worker_id for hb in live.live()] == ["w3"]
    assert sample("xrunner_workers_lost_total", {"pool": "gpu"}) == before + 1
