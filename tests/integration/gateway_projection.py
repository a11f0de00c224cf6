"""Fixtures of the tests that drive the gateway's projection by hand (projector, unknown events, re-drive): a
JetStream of their own on a fresh nats-server, and a pool on the test's database with the gateway's schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.resources import files

import asyncpg
import pytest
from nats.js import JetStreamContext
from support import declared_js

from xrunner.servicekit import db

SCHEMA = "gateway"


@pytest.fixture
async def own_js(fresh_nats_url: str) -> AsyncIterator[JetStreamContext]:
    async with declared_js(fresh_nats_url) as context:
        yield context


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, SCHEMA)
    async with pool.acquire() as conn:
        await db.migrate(conn, SCHEMA, db.migration_files(files("xrunner.gateway") / "sql"))
    yield pool
    await pool.close()
