"""The scheduler's Postgres projection, one module per table; the SQL is named in `sql/queries.sql`."""

from __future__ import annotations

from xrunner.servicekit.sql import load_queries

QUERIES = load_queries("xrunner.scheduler")
