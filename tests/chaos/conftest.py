"""The chaos suite's infrastructure and profile: a Postgres of its own (a nemesis restarts it), a nats-server per
test (a nemesis kills it), and how much load and how many rounds (short in CI, long by hand)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos.infra import Nats, Postgres
from chaos.nemesis import ChaosCluster
from chaos.profile import Profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return Profile.from_env()


@pytest.fixture(scope="session")
def chaos_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A Postgres cluster only the chaos tests use, one database per test, restarted by a nemesis."""
    pg = Postgres(tmp_path_factory.mktemp("chaos-pg"))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def chaos_cluster(chaos_pg: Postgres, tmp_path: Path) -> Iterator[ChaosCluster]:
    nats = Nats(tmp_path / "nats")
    nats.start()
    cluster = ChaosCluster(nats, chaos_pg, chaos_pg.create_database(f"chaos_{uuid.uuid4().hex}"), tmp_path / "logs")
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.stop()
        nats.stop()
        if chaos_pg.proc is None or chaos_pg.proc.poll() is not None:
            chaos_pg.start()  # a test that failed mid-fault leaves the next one a running server
