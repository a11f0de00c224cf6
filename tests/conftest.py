"""Real infrastructure per test session: a nats-server with JetStream, a Postgres cluster, a database per test."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from integration.cluster import Cluster
from nats.js import JetStreamContext
from support import PgServer, nats_server

from xrunner.cli import embedded
from xrunner.servicekit import streams

# The gateway projection's fixtures (own_js, pool), shared by the tests that drive it by hand.
pytest_plugins = ["integration.gateway_projection"]

TEMPLATE_DB = "xr_template"


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server shared by the whole session."""
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A throwaway Postgres cluster (no fsync) with an empty `xr_template` database to copy per test.

    Nothing may stay connected to `xr_template`: CREATE DATABASE ... TEMPLATE refuses a template in use.
    """
    base = tmp_path_factory.mktemp("pg")
    server = PgServer("127.0.0.1", embedded.free_port())
    proc = embedded.start_postgres(base / "data", server.port, host=server.host, log_file=base / "pg.log", fast=True)
    try:
        embedded.create_database(server.host, server.port, TEMPLATE_DB)
        yield server
    finally:
        embedded.stop(proc, sig=signal.SIGINT)


@pytest.fixture
def database_url(pg_server: PgServer) -> str:
    """A fresh database for this test, copied from `xr_template`; left behind for the cluster's teardown."""
    name = f"t_{uuid.uuid4().hex}"
    embedded.create_database(pg_server.host, pg_server.port, name, template=TEMPLATE_DB)
    return pg_server.url(name)


@pytest.fixture
def fresh_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server of this test's own, for tests whose durable consumers must not see other tests' events."""
    with nats_server(tmp_path_factory.mktemp("nats-own")) as url:
        yield url


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on the session's server with xrunner's streams declared."""
    nc = await streams.connect(nats_url, "test")
    context = nc.jetstream()
    await streams.declare(context)
    yield context
    await nc.close()


@pytest.fixture
def cluster(fresh_nats_url: str, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Services as separate processes (started by the test) on this test's own NATS and database."""
    running = Cluster(fresh_nats_url, database_url, tmp_path)
    try:
        yield running
    finally:
        running.stop()
