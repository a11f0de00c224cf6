"""Named SQL: `-- name:` sections parse into name -> query text, and a service's queries.sql loads."""

from __future__ import annotations

import pytest

from xrunner.servicekit.sql import load_queries, parse_queries

TEXT = """-- a file comment before any query is ignored

-- name: first
-- documents the query
SELECT 1;

--name:second
SELECT 2
FROM t;
"""


def test_each_named_section_is_one_query_with_its_comments() -> None:
    assert dict(parse_queries(TEXT)) == {"first": "-- documents the query\nSELECT 1;", "second": "SELECT 2\nFROM t;"}


@pytest.mark.parametrize(
    "text", ["-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "-- name: empty\n-- only a comment\n-- name: b\nSELECT 1;"]
)
def test_a_repeated_name_or_a_query_without_sql_fails_loudly(text: str) -> None:
    with pytest.raises(ValueError):
        parse_queries(text)


def test_the_schedulers_queries_load_from_its_package() -> None:
    queries = load_queries("xrunner.scheduler")
    names = {"live_jobs", "live_dispatches", "upsert_jobs", "set_dispatches", "all_tenants", "upsert_tenant"}
    assert names <= set(queries)
