"""The embedded nats-server and Postgres behind the test fixtures are real and isolate tests from each other."""

from __future__ import annotations

import asyncpg
import nats
import pytest
from support import wait_until

seen_databases: list[str] = []


async def test_nats_fixture_accepts_connections_with_jetstream_enabled(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().account_info()
    finally:
        await nc.close()
    assert info.api.level


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_its_own_database_that_answers_select_1(database_url: str, run: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("select 1") == 1
        name = await conn.fetchval("select current_database()")
        await conn.execute("create table marker (run int)")  # fails if an earlier test left it behind
    finally:
        await conn.close()
    assert name.startswith("t_")
    assert name not in seen_databases
    seen_databases.append(name)


async def test_wait_until_returns_the_first_truthy_value_and_names_what_timed_out() -> None:
    calls = iter([None, 0, "ready"])
    assert await wait_until(lambda: next(calls), timeout=1.0) == "ready"
    with pytest.raises(AssertionError, match="the moon"):
        await wait_until(lambda: None, timeout=0.05, what="the moon")
