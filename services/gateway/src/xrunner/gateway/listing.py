"""Lists a tenant's jobs from the read model: filtered by state, label and creation time, newest first, with an
opaque cursor so pages stay stable while new jobs arrive."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import asyncpg

from xrunner.contracts import codec
from xrunner.contracts.api import JobList, JobView


class BadCursor(ValueError):
    """The cursor was not one this API handed out."""


def encode_cursor(view: JobView) -> str:
    return base64.urlsafe_b64encode(f"{view.created_at.isoformat()}|{view.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        if "\x00" in job_id:  # no id holds one, and Postgres cannot take it as text
            raise ValueError("NUL in the cursor's job id")
        return datetime.fromisoformat(at), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc


async def list_jobs(
    pool: asyncpg.Pool,
    tenant: str,
    *,
    states: list[str],
    labels: dict[str, str],
    created_after: datetime | None,
    limit: int,
    cursor: str | None,
) -> JobList:
    if any("\x00" in key + value for key, value in labels.items()):
        return JobList(jobs=[])  # no stored label holds a NUL (specs refuse it), and jsonb could not take it
    where, args = ["tenant = $1"], list[object]([tenant])

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if states:
        where.append(f"state = ANY({arg(states)}::text[])")
    if labels:
        where.append(f"view->'spec'->'labels' @> {arg(codec.encode(labels).decode())}::jsonb")
    if created_after is not None:
        where.append(f"created_at > {arg(created_after)}")
    if cursor is not None:
        at, job_id = decode_cursor(cursor)
        where.append(f"(created_at, id) < ({arg(at)}, {arg(job_id)})")
    rows = await pool.fetch(
        f"SELECT view::text AS view FROM jobs WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {arg(limit + 1)}",
        *args,
    )
    views = [codec.decode(r["view"].encode(), JobView) for r in rows]
    more = len(views) > limit
    views = views[:limit]
    return JobList(jobs=views, next_cursor=encode_cursor(views[-1]) if more and views else None)
