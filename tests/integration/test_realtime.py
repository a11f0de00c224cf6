"""The realtime edge over real HTTP on real NATS: resumable event streams, log streams, fan-out, and auth."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from integration.cluster import SECRET, Cluster
from prometheus_client.parser import text_string_to_metric_families
from support import W0, wait_until

from xrunner.cli.edge import Sse, SseParser
from xrunner.contracts import subjects
from xrunner.realtime.hub import Hub
from xrunner.servicekit import streams
from xrunner.servicekit.auth import Principal, mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.tickets import mint_ticket

EVENT_CLIENTS = 'xrunner_realtime_clients{stream="events"}'


async def sse(response: httpx.Response) -> AsyncIterator[Sse]:
    """Parse a Server-Sent Events body with the CLI's parser (comments, i.e. pings, are skipped)."""
    parser = SseParser()
    async for line in response.aiter_lines():
        if (message := parser.feed(line)) is not None:
            yield message


def token(tenant: str, ttl_s: int = 600) -> str:
    return mint(SECRET, tenant=tenant, subject=f"{tenant}-viewer", scopes=["jobs:read", "jobs:write"],
                issuer="xrunner", audience="xrunner", ttl_s=ttl_s, now=int(time.time()))


def stack(cluster: Cluster, **realtime: object) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker0", "worker", wait=False, slots=8, worker_id=W0, sandbox="none")
    cluster.start("realtime", "realtime", wait=False, ping_s=1, **realtime)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


def edge(cluster: Cluster, tenant: str = "acme") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=cluster.api("realtime"), headers={"Authorization": f"Bearer {token(tenant)}"},
                             timeout=httpx.Timeout(30, read=30))


async def submit(cluster: Cluster, tenant: str, cmd: str) -> str:
    async with cluster.client(tenant) as client:
        response = await client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["sh", "-c", cmd]}})
        assert response.status_code in (201, 202), response.text
        return str(response.json()["job"]["id"])


async def collect(client: httpx.AsyncClient, path: str, until: int, headers: dict[str, str] | None = None,
                  timeout: float = 20) -> list[Sse]:
    """The stream's first `until` events, or up to its `end`; fails the test when they do not come in time."""
    got: list[Sse] = []
    try:
        async with asyncio.timeout(timeout), client.stream("GET", path, headers=headers or {}) as response:
            assert response.status_code == 200, await response.aread()
            async for message in sse(response):
                got.append(message)
                if len(got) >= until or message.event == "end":
                    return got
    except TimeoutError:
        raise AssertionError(f"{path}: {len(got)} of {until} events after {timeout}s; last: {got[-3:]}") from None
    raise AssertionError(f"{path} ended after {len(got)} of {until} events without `end`; last: {got[-3:]}")


async def tenant_log(cluster: Cluster, tenant: str) -> list[int]:
    nc = await streams.connect(cluster.nats_url, "test")
    try:
        return [seq async for seq, _ in EventStore(nc.jetstream()).read(subjects.job_events(tenant))]
    finally:
        await nc.close()


async def test_a_client_that_reconnects_with_last_event_id_gets_exactly_the_missed_events(cluster: Cluster) -> None:
    stack(cluster)
    async with edge(cluster) as client:
        first = await submit(cluster, "acme", "true")
        await wait_until(lambda: _count(cluster, "acme", 5), what="the first job's five events")
        seen = await collect(client, "/v1/events?since=0", until=3)
        assert [m.event for m in seen] == ["submitted", "queued", "dispatched"]
        assert all(f'"job_id":"{first}"' in m.data for m in seen), seen
        for _ in range(3):  # while disconnected
            await submit(cluster, "acme", "true")
        everything = await wait_until(lambda: _count(cluster, "acme", 20), what="twenty events")
        rest = await collect(client, "/v1/events", until=len(everything) - 3, headers={"Last-Event-ID": seen[-1].id})
    assert [int(m.id) for m in seen + rest if m.id] == everything


async def _count(cluster: Cluster, tenant: str, n: int) -> list[int] | None:
    seqs = await tenant_log(cluster, tenant)
    return seqs if len(seqs) >= n else None


async def test_a_live_stream_shows_new_jobs_and_never_another_tenants(cluster: Cluster) -> None:
    stack(cluster)
    async with edge(cluster, "acme") as client:
        listening = asyncio.create_task(collect(client, "/v1/events?type=succeeded", until=2))
        # the stream starts at the events stored after it subscribed: submit only once the edge counts it
        await wait_until(lambda: _gauge_is(cluster, EVENT_CLIENTS, 1), what="the stream subscribed")
        await submit(cluster, "globex", "true")
        ids = [await submit(cluster, "acme", "true") for _ in range(2)]
        got = await listening
    assert [m.event for m in got] == ["succeeded", "succeeded"]
    assert all(any(i in m.data for i in ids) for m in got) and not any("globex" in m.data for m in got)


async def test_a_log_stream_delivers_ten_thousand_lines_in_order_then_end(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, "acme", "i=1; while [ $i -le 10000 ]; do echo line $i; i=$((i+1)); done")
    async with edge(cluster) as client:
        live = await collect(client, f"/v1/jobs/{job}/logs/stream", until=100_000, timeout=60)
        after = await collect(client, f"/v1/jobs/{job}/logs/stream", until=100_000, timeout=60)
        middle = await collect(client, f"/v1/jobs/{job}/logs/stream", until=100_000, timeout=60,
                               headers={"Last-Event-ID": "40000"})
    expected = "".join(f"line {i}\n" for i in range(1, 10001))
    for stream in (live, after):
        assert stream[-1].event == "end"
        assert _text(stream) == expected
    assert _text(middle) == expected.encode()[40000:].decode()


def _text(stream: list[Sse]) -> str:
    return "".join(m.data for m in stream if m.event == "stdout")


async def test_escape_sequences_are_neutralised_in_the_log_stream(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, "acme", r"printf 'red\033[31mtext\007 bad:\377\n'")
    async with edge(cluster) as client:
        got = await collect(client, f"/v1/jobs/{job}/logs/stream", until=100)
    text = "".join(m.data for m in got if m.event == "stdout")
    assert "\x1b" not in text and "\x07" not in text
    assert "red\\x1b[31mtext\\x07 bad:\ufffd" in text


async def test_bad_expired_and_reused_credentials_are_refused(cluster: Cluster) -> None:
    stack(cluster)
    base = cluster.api("realtime")
    who = Principal(subject="u", tenant="acme", scopes=frozenset({"jobs:read"}))
    ticket = mint_ticket(SECRET, who, ttl_s=30, jti=new_id(), now=int(time.time()))
    stale = mint_ticket(SECRET, who, ttl_s=30, jti=new_id(), now=int(time.time()) - 3600)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for params, headers in (({}, {}), ({"ticket": "garbage"}, {}), ({"ticket": stale}, {}),
                                ({}, {"Authorization": f"Bearer {token('acme', ttl_s=-600)}"})):
            response = await client.get("/v1/events", params=params, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "unauthenticated"
        async with client.stream("GET", "/v1/events", params={"ticket": ticket}) as first:
            assert first.status_code == 200
        async with cluster.client("acme") as api:  # the gateway mints them for browsers
            minted = (await api.post("/v1/stream-tickets")).json()["ticket"]
        async with client.stream("GET", "/v1/events", params={"ticket": minted}) as second:
            assert second.status_code == 200
        again = await client.get("/v1/events", params={"ticket": ticket})
        assert again.status_code == 401 and "already used" in again.json()["detail"]


async def test_a_client_that_does_not_read_is_dropped_without_delaying_the_others(nats_url: str) -> None:
    nc = await streams.connect(nats_url, "test")
    js = nc.jetstream()
    await streams.declare(js)
    hub = Hub(js, buffer=20)  # a hand-out may carry a few events at once
    tenant = f"t{new_id()[-10:]}"
    stalled, reader = await hub.join(tenant), await hub.join(tenant)
    received: list[int] = []

    async def read() -> None:
        while len(received) < 50:
            await reader.wait(5)
            received.extend(item.seq for item in reader.take())

    reading = asyncio.create_task(read())
    for i in range(50):
        await js.publish(subjects.job_events(tenant, "job", "queued"), b"{}", stream=subjects.EVENTS_STREAM)
        if i % 5 == 4:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(reading, 10)
    assert len(received) == 50 and received == sorted(received)
    assert stalled.overflowed and stalled not in hub.feeds[tenant].clients
    await hub.leave(tenant, reader)
    await hub.leave(tenant, stalled)
    await nc.close()


@pytest.mark.timeout(240)
async def test_five_hundred_clients_all_receive_every_event(cluster: Cluster) -> None:
    stack(cluster)
    n = 500
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(base_url=cluster.api("realtime"), limits=limits, timeout=httpx.Timeout(60),
                                 headers={"Authorization": f"Bearer {token('acme')}"}) as client:
        listeners = [asyncio.create_task(collect(client, "/v1/events?type=succeeded", until=3, timeout=90))
                     for _ in range(n)]
        await wait_until(lambda: _connected(cluster, n), timeout=60, what=f"{n} connected clients")
        ids = [await submit(cluster, "acme", "true") for _ in range(3)]
        results = await asyncio.gather(*listeners)
    assert all(len(r) == 3 for r in results), sorted(collections.Counter(len(r) for r in results).items())
    for received in results:  # the three may finish in any order, but each client sees each one once
        assert sorted(next(i for i in ids if i in m.data) for m in received) == sorted(ids)


async def _connected(cluster: Cluster, n: int) -> bool:
    return (await scrape(cluster)).get(EVENT_CLIENTS, 0) >= n


async def scrape(cluster: Cluster) -> dict[str, float]:
    """The realtime edge's metrics by sample, keyed `name{label="value",...}` with the labels sorted."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{cluster.api('realtime')}/metrics")).text
    return {sample.name + _labels(sample.labels): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


async def test_the_edge_counts_its_clients_and_the_lag_from_commit_to_delivery(cluster: Cluster) -> None:
    cluster.start("realtime", "realtime", ping_s=1)
    nc = await streams.connect(cluster.nats_url, "test")
    try:
        async with edge(cluster) as client, client.stream("GET", "/v1/events") as response:
            await wait_until(lambda: _gauge_is(cluster, EVENT_CLIENTS, 1), what="one connected client")
            ack = await nc.jetstream().publish(subjects.job_events("acme", "j1", "queued"), b'{"n":1}',
                                               stream=subjects.EVENTS_STREAM)
            async with asyncio.timeout(10):
                first = await anext(m async for m in sse(response) if m.event == "queued")
            seen = await scrape(cluster)
        await wait_until(lambda: _gauge_is(cluster, EVENT_CLIENTS, 0), what="the client gone from the gauge")
    finally:
        await nc.close()
    assert (first.id, first.data) == (str(ack.seq), '{"n":1}')
    assert seen[EVENT_CLIENTS] == 1 and seen['xrunner_realtime_clients{stream="logs"}'] == 0
    assert seen["xrunner_realtime_events_delivered_total"] == 1
    for lag in ("delivery", "fanout"):  # one event, one client: one observation each, well within a second
        assert seen[f"xrunner_realtime_{lag}_lag_seconds_count"] == 1
        assert seen[f'xrunner_realtime_{lag}_lag_seconds_bucket{{le="1.0"}}'] == 1
        assert 0 < seen[f"xrunner_realtime_{lag}_lag_seconds_sum"] < 1


async def _gauge_is(cluster: Cluster, name: str, value: float) -> bool:
    return (await scrape(cluster)).get(name) == value


async def _consumers(cluster: Cluster, stream: str, subject: str) -> int:
    """How many JetStream consumers on `stream` filter exactly `subject` (the realtime edge's feeds)."""
    nc = await streams.connect(cluster.nats_url, "test-consumers")
    try:
        found: list[str | None] = []
        while batch := await nc.jetstream().consumers_info(stream, offset=len(found)):
            found += [info.config.filter_subject for info in batch]
    finally:
        await nc.close()
    return found.count(subject)


async def _consumers_are(cluster: Cluster, expected: dict[tuple[str, str], int]) -> bool:
    return all([await _consumers(cluster, stream, subject) == n for (stream, subject), n in expected.items()])


async def _open_raw(cluster: Cluster, path: str, wait: bool = True) -> asyncio.StreamWriter:
    """A stream request on a raw socket; with `wait`, its response headers read (the feed is subscribed by then)."""
    port = cluster.ports["realtime"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token('acme')}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    if wait:
        assert (await reader.readline()).startswith(b"HTTP/1.1 200"), path
    return writer


async def test_feeds_are_released_and_restored_after_two_hundred_clients_vanish(cluster: Cluster,
                                                                                 tmp_path: Path) -> None:
    """Clients reset their connections without reading, some of them while their feed is still starting: the feeds
    of the clients that stay keep working, the others are released, and a new client gets a working feed (one
    consumer per tenant, one per log reader)."""
    stack(cluster)
    stop = tmp_path / "stop"
    job = await submit(cluster, "acme", f"while [ ! -e {stop} ]; do echo tick; sleep 0.2; done; echo done")
    paths = ("/v1/events", f"/v1/jobs/{job}/logs/stream")
    events, logs = (subjects.EVENTS_STREAM, subjects.job_events("acme")), (subjects.LOGS_STREAM,
                                                                           subjects.job_logs("acme", job))
    async with edge(cluster) as survivor, edge(cluster) as newcomer:
        stayed = [asyncio.create_task(collect(survivor, "/v1/events?type=succeeded", until=1, timeout=90)),
                  asyncio.create_task(collect(survivor, paths[1], until=100_000, timeout=90))]
        await wait_until(lambda: _consumers_are(cluster, {events: 1, logs: 1}), timeout=30, what="the survivors")
        writers = [await _open_raw(cluster, path) for _ in range(100) for path in paths]
        await wait_until(lambda: _consumers_are(cluster, {events: 1, logs: 101}), timeout=30, what="every feed")
        for writer in writers:
            writer.transport.abort()
        hasty = await asyncio.gather(*(_open_raw(cluster, path, wait=False) for _ in range(100) for path in paths))
        for writer in hasty:  # gone before their feeds started
            writer.transport.abort()
        await wait_until(lambda: _consumers_are(cluster, {events: 1, logs: 1}), timeout=30, what="feeds released")
        came = [asyncio.create_task(collect(newcomer, "/v1/events?type=succeeded", until=1, timeout=60)),
                asyncio.create_task(collect(newcomer, paths[1], until=100_000, timeout=60))]
        await wait_until(lambda: _consumers_are(cluster, {events: 1, logs: 2}), timeout=30, what="the newcomer")
        stop.touch()
        for got_events, got_log in (stayed, came):
            assert job in (await got_events)[0].data
            output = "".join(m.data for m in await got_log if m.event == "stdout")
            assert output.startswith("tick\n") and output.endswith("done\n"), output[-200:]
