"""Submitting with real gateway and scheduler processes: admission's decision (the scheduler's `job.queued`, which it
appends as soon as the live feed hands it the stored submission) reaches the request that waits for it, also after
the consumers sat idle (a pull consumer's request that outlived its fetch once held the next event back for up to a
second, and the submit answered 202), and for each job of a small batch."""

from __future__ import annotations

import asyncio

from integration.cluster import Cluster

NOWHERE = {"workload": {"kind": "process", "argv": ["true"]}, "resources": {"pool": "nowhere"}}
# Idle pauses spread over the consumers' 1 s pull expiry, so that some submit lands right after an expiry.
PAUSES_S = (1.02, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.75, 1.9, 2.05)


def start(cluster: Cluster) -> None:
    cluster.start("scheduler", "scheduler", wait=False)
    cluster.start("gateway", "gateway", wait=False)
    for name in ("scheduler", "gateway"):
        cluster.wait_ready(name)


async def test_every_submit_after_an_idle_pause_is_admitted_in_its_request(cluster: Cluster) -> None:
    start(cluster)
    statuses: list[int] = []
    async with cluster.client("acme") as client:
        assert (await client.post("/v1/jobs", json=NOWHERE)).status_code in (201, 202)  # warm: a leader exists
        for pause in PAUSES_S:
            await asyncio.sleep(pause)  # the idle pause is the condition under test, not a barrier
            response = await client.post("/v1/jobs", json=NOWHERE)
            statuses.append(response.status_code)
            assert response.status_code != 201 or response.json()["job"]["state"] == "queued"
    assert statuses == [201] * len(PAUSES_S), statuses


async def test_each_job_of_a_small_batch_is_reported_queued_with_its_position(cluster: Cluster) -> None:
    start(cluster)
    async with cluster.client("acme") as client:
        assert (await client.post("/v1/jobs", json=NOWHERE)).status_code in (201, 202)  # warm: a leader exists
        response = await client.post("/v1/jobs/batch", json={"jobs": [NOWHERE] * 20})
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(20))
    assert [r["job"]["state"] for r in results] == ["queued"] * 20
    assert len({r["job"]["id"] for r in results}) == 20


async def test_a_large_batch_is_appended_in_one_piece_and_its_repeat_returns_the_same_jobs(cluster: Cluster) -> None:
    start(cluster)
    async with cluster.client("acme") as client:
        headers = {"Idempotency-Key": "large-batch"}
        first = await client.post("/v1/jobs/batch", json={"jobs": [NOWHERE] * 400}, headers=headers)
        again = await client.post("/v1/jobs/batch", json={"jobs": [NOWHERE] * 400}, headers=headers)
        assert (first.status_code, again.status_code) == (202, 202)
        jobs = [r["job"] for r in first.json()["results"]]
        versions = [job["version"] for job in jobs]
        assert versions == list(range(versions[0], versions[0] + 400)), "one atomic batch: stored in one piece"
        assert [r["job"]["id"] for r in again.json()["results"]] == [job["id"] for job in jobs]
        for job in jobs[:: 57]:  # each answered version is the job's own submission in the log
            events = (await client.get(f"/v1/jobs/{job['id']}/events")).json()
            assert (events[0]["seq"], events[0]["type"]) == (job["version"], "job.submitted.v1")
