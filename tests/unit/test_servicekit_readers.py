"""Readers every service shares: an attempt's output from a byte offset, named SQL, and which files are migrations."""

from __future__ import annotations

from importlib.resources import files

import pytest

from xrunner.contracts.messages import LogChunk
from xrunner.servicekit import db
from xrunner.servicekit.attemptlog import AttemptLog, Output
from xrunner.servicekit.sql import load_queries


def chunk(offset: int, data: bytes, attempt: int = 1, stream: str = "stdout", eof: bool = False) -> LogChunk:
    return LogChunk(job_id="j1", attempt=attempt, seq=1, stream=stream, offset=offset, data=data,  # type: ignore[arg-type]
                    eof=eof)


def read(start: int, chunks: list[LogChunk], attempt: int = 1) -> list[Output]:
    cursor = AttemptLog(attempt, start)
    return [out for c in chunks if (out := cursor.take(c)) is not None]


OUTPUT = [chunk(0, b"hello "), chunk(6, b"world\n", stream="stderr"), chunk(12, b"", stream="system", eof=True)]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (0, [Output("stdout", 0, b"hello "), Output("stderr", 6, b"world\n")]),
        (3, [Output("stdout", 3, b"lo "), Output("stderr", 6, b"world\n")]),
        (6, [Output("stderr", 6, b"world\n")]),
        (11, [Output("stderr", 11, b"\n")]),
        (12, []),
        (99, []),
    ],
)
def test_an_attempts_output_is_read_from_any_byte_offset_without_the_end_marker(start: int,
                                                                                expected: list[Output]) -> None:
    assert read(start, OUTPUT) == expected


def test_chunks_of_another_attempt_and_chunks_seen_again_are_passed_over() -> None:
    chunks = [chunk(0, b"old", attempt=1), chunk(0, b"new", attempt=2), chunk(0, b"new", attempt=2),
              chunk(3, b"er", attempt=2)]
    assert read(0, chunks, attempt=2) == [Output("stdout", 0, b"new"), Output("stdout", 3, b"er")]


def test_the_cursor_ends_where_the_output_read_so_far_ends() -> None:
    cursor = AttemptLog(1, 2)
    for c in OUTPUT:
        cursor.take(c)
    assert cursor.offset == 12
    assert cursor.ends_with(OUTPUT[-1]) and not cursor.ends_with(OUTPUT[0])
    assert not AttemptLog(2, 0).ends_with(OUTPUT[-1])


def test_the_gateways_named_queries_load_by_name_and_are_no_migrations() -> None:
    queries = load_queries("xrunner.gateway")
    assert set(queries) == {"upsert_jobs", "get_job", "list_jobs", "count_artifacts", "forget_job"}
    assert all(sql and not sql.startswith("-- name:") for sql in queries.values())
    assert queries["get_job"].startswith("SELECT")
    versions = [version for version, _ in db.migration_files(files("xrunner.gateway") / "sql")]
    assert versions == sorted(versions) and "queries" not in versions and versions[0] == "001_jobs"
