"""One job's path is followed across the services by its W3C trace id: the client's `traceparent` is carried from
the gateway request through every event and message the job's path produces, and every log line the gateway, the
scheduler, the worker and the realtime edge write about it names the same trace."""

from __future__ import annotations

import json

from integration.cluster import Cluster
from support import W0, wait_until

from xrunner.contracts import subjects
from xrunner.servicekit import streams, tracing
from xrunner.servicekit.eventstore import read_entries

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def traced_lines(cluster: Cluster, name: str, job_id: str) -> list[dict[str, object]]:
    """The JSON log lines of `name` that are about `job_id`."""
    lines = []
    for line in cluster.log(name).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("job_id") == job_id:
            lines.append(entry)
    return lines


async def headers_of(cluster: Cluster, stream: str, subject: str) -> list[str | None]:
    """The `traceparent` of every message on `subject`, in order."""
    nc = await streams.connect(cluster.nats_url, "test-trace")
    try:
        js = nc.jetstream()
        found = []
        async for seq, _, _ in read_entries(js, stream, subject):
            found.append(tracing.of((await js.get_msg(stream, seq)).headers))
        return found
    finally:
        await nc.close()


async def test_one_jobs_trace_id_is_in_every_event_header_and_in_the_logs_of_every_service(cluster: Cluster) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker", "worker", wait=False, slots=2, worker_id=W0, sandbox="none")
    cluster.start("realtime", "realtime", wait=False, ping_s=1)
    for name in list(cluster.procs):
        cluster.wait_ready(name)
    async with cluster.client("acme") as client:
        answer = await client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["echo", "hi"]}},
                                   headers={"traceparent": CLIENT})
        assert answer.status_code in (201, 202), answer.text
        assert tracing.parse(answer.headers["traceparent"]).trace_id == TRACE_ID  # type: ignore[union-attr]
        job_id = answer.json()["job"]["id"]

        async def done() -> bool:
            return (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "succeeded"

        await wait_until(done, timeout=30, what="the job succeeded")
    edge = cluster.client("acme")
    edge.base_url = cluster.api("realtime")  # type: ignore[assignment]
    async with edge:
        followed = await edge.get(f"/v1/jobs/{job_id}/logs/stream")
        assert "event: end" in followed.text

    events = await headers_of(cluster, subjects.EVENTS_STREAM, subjects.job_history("acme", job_id))
    chunks = await headers_of(cluster, subjects.LOGS_STREAM, subjects.job_logs("acme", job_id))
    assert len(events) >= 5 and chunks  # submitted, queued, dispatched, started, succeeded; the output
    assert {tracing.parse(h).trace_id if h else None for h in events + chunks} == {TRACE_ID}
    for name in ("gateway", "scheduler", "worker", "realtime"):
        lines = await wait_until(lambda n=name: traced_lines(cluster, n, job_id), timeout=10,
                                 what=f"{name}'s log lines about the job")
        assert {line.get("trace_id") for line in lines} == {TRACE_ID}, (name, lines)
