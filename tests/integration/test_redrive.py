"""Dead letters an operator can act on, against real NATS and Postgres: an event a projection's fold cannot apply is
parked and the projection goes on; `xrunner deadletters list` and `show` show it; `replay` before the fix changes
nothing and says why; after the fix it re-folds the job (the rows equal a rebuild's), and a second replay is a
no-op."""

from __future__ import annotations

import asyncio
import json
from importlib.resources import files
from typing import Any

import asyncpg
import pytest
from integration.gateway_projection import SCHEMA
from integration.test_projector import RaisesFor, run_job, table
from nats.js import JetStreamContext
from support import wait_until
from typer.testing import CliRunner

from xrunner.cli.main import app
from xrunner.contracts import subjects
from xrunner.gateway.readmodel import JobsProjection
from xrunner.servicekit import db
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.projector import Projector, position, rebuild
from xrunner.servicekit.redrive import CannotRedrive, marker, redrive


def xrunner(*args: str, nats_url: str, database_url: str) -> Any:
    """The CLI, as an operator runs it against the stack (in a thread: it runs its own event loop)."""
    env = {"XR_NATS_URL": nats_url, "XR_DATABASE_URL": database_url}
    return CliRunner().invoke(app, list(args), env=env)


async def states(pool: asyncpg.Pool) -> dict[str, str]:
    return {r["id"]: r["state"] for r in await pool.fetch("SELECT id, state FROM gateway.jobs")}


async def folded_to(pool: asyncpg.Pool, seq: int) -> bool:
    async with pool.acquire() as conn:
        return await position(conn, JobsProjection.name) >= seq


async def test_a_poison_event_is_parked_listed_and_re_driven_once_after_the_fix(
    own_js: JetStreamContext, pool: asyncpg.Pool, fresh_nats_url: str, database_url: str
) -> None:
    store = EventStore(own_js)
    jobs = [await run_job(store, "acme") for _ in range(4)]
    poison_seq, poison = [item async for item in store.read(subjects.job_history("acme", jobs[1]))][2]
    last = (await own_js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    buggy = RaisesFor(poison.event_id)  # the deployed fold has a bug for this event
    task = asyncio.create_task(Projector(own_js, pool, buggy).run())
    try:
        await wait_until(lambda: folded_to(pool, last), what="the projection to pass the poison")
    finally:
        task.cancel()
    assert await states(pool) == {**dict.fromkeys(jobs, "succeeded"), jobs[1]: "queued"}

    cli = {"nats_url": fresh_nats_url, "database_url": database_url}
    listed = await asyncio.to_thread(xrunner, "deadletters", "list", "--json", **cli)
    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.output)
    assert (letter["projection"], letter["seq"], letter["subject"]) == (
        "gateway.jobs", poison_seq, subjects.job_events("acme", jobs[1], "dispatched"))
    assert letter["error"].startswith("KeyError")
    shown = await asyncio.to_thread(xrunner, "deadletters", "show", str(letter["dead_seq"]), **cli)
    stored = await own_js.get_msg(subjects.EVENTS_STREAM, poison_seq)
    assert json.loads(shown.output)["payload"] == (stored.data or b"").decode()

    async with pool.acquire() as conn:
        with pytest.raises(CannotRedrive, match="still cannot be applied"):
            await redrive(own_js, conn, buggy, letter["dead_seq"])  # not fixed yet: nothing is written
        assert await position(conn, marker("gateway.jobs", letter["dead_seq"])) == 0
    assert (await states(pool))[jobs[1]] == "queued"

    replayed = await asyncio.to_thread(xrunner, "deadletters", "replay", str(letter["dead_seq"]), **cli)
    assert replayed.exit_code == 0, replayed.output  # the fixed fold is what `python -m xrunner.gateway` runs
    assert await states(pool) == dict.fromkeys(jobs, "succeeded")
    rows = await table(pool, SCHEMA)
    async with pool.acquire() as conn:
        again = await redrive(own_js, conn, JobsProjection(), letter["dead_seq"])
        assert (again.outcome, again.events) == ("already", 0)
        await db.migrate(conn, "gateway_rebuild", db.migration_files(files("xrunner.gateway") / "sql"))
        await rebuild(own_js, conn, JobsProjection(), "gateway_rebuild")
    assert await table(pool, SCHEMA) == rows == await table(pool, "gateway_rebuild")
