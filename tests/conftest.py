"""Real infrastructure per test session: a nats-server with JetStream, a Postgres cluster, a database per test."""

from __future__ import annotations

import fcntl
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from integration.cluster import Cluster
from nats.js import JetStreamContext
from support import PgServer, declared_js, nats_server
from xdist.scheduler import LoadScopeScheduling

from xrunner.cli import embedded

# The gateway projection's fixtures (own_js, pool), shared by the tests that drive it by hand.
pytest_plugins = ["integration.gateway_projection"]

TEMPLATE_DB = "xr_template"

# Hypothesis's per-example deadline (200 ms by default) times pure functions that take milliseconds alone; with the
# suite on two processes beside service processes, one example of a few ms took 360 ms and failed a correct test.
# What the property tests check is results; the code's speed is measured by bench/.
settings.register_profile("xrunner", deadline=None)
settings.load_profile("xrunner")

# How `./dev test` spreads the suite over its pytest-xdist processes (`-n 2 --dist loadgroup`): each group runs on
# one process, start to end. "heavy" holds what loads the whole machine for a minute or more (many processes, fault
# injection, 1,000 jobs, the browser's stacks, the image build and compose) and whose deadlines assume it runs alone;
# "e2e-stack" the files that share the e2e session's stack and the SDK build in web/packages/sdk/dist. Every other
# test is grouped by its file, so a module-scoped fixture is set up once. Matched by node id prefix.
XDIST_GROUPS = {
    "heavy": (
        "tests/browser/",
        "tests/chaos/test_chaos.py",
        "tests/e2e/test_bench_peers_smoke.py",
        "tests/e2e/test_cluster.py",
        "tests/e2e/test_deploys.py",
        "tests/images/",
        "tests/integration/test_fencing.py",
        "tests/integration/test_worker.py::test_one_worker_runs_a_thousand_sandboxed_jobs_at_once",
    ),
    "e2e-stack": ("tests/e2e/test_stack.py", "tests/e2e/test_sdk_node.py", "tests/unit/test_console_pages.py"),
}


class GroupScheduling(LoadScopeScheduling):
    """xdist's scheduling by scope, the scope being a test's group in XDIST_GROUPS. (xdist 3.8's own loadgroup reads
    `xdist_group` marks through a node id suffix that pytest 9.2 no longer lets it set: pytest-xdist issue 1386.)"""

    def _split_scope(self, nodeid: str) -> str:
        return next((name for name, prefixes in XDIST_GROUPS.items() if nodeid.startswith(prefixes)),
                    nodeid.split("::", 1)[0])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


# Tests that load the machine so much that nothing may run beside them, either way: 1,000 sandboxed jobs at once
# kept a test on the other process from starting six jobs in 15 s, and were not all running within 120 s themselves.
ALONE = ("tests/integration/test_worker.py::test_one_worker_runs_a_thousand_sandboxed_jobs_at_once",)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    """Under xdist, every test holds the run's lock shared, a test in ALONE holds it exclusively. A gate taken before
    the lock, and kept by an ALONE test while it waits, stops the other process from taking the shared lock again
    and again (flock prefers no waiter)."""
    if not hasattr(item.config, "workerinput"):
        return (yield)
    folder = item.config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]  # this run's, shared
    alone = item.nodeid in ALONE
    with open(folder / "xr-alone.gate", "a") as gate, open(folder / "xr-alone.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        return (yield)  # closing the files releases the locks


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
    async with declared_js(nats_url) as context:
        yield context


@pytest.fixture
def cluster(fresh_nats_url: str, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Services as separate processes (started by the test) on this test's own NATS and database."""
    running = Cluster(fresh_nats_url, database_url, tmp_path)
    try:
        yield running
    finally:
        running.stop()
