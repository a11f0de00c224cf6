"""Which dead letters end a job, and with what: `scheduler.deadletters.abandonment` and the error sanitizer."""

from __future__ import annotations

import asyncpg
import pytest
from test_lifecycle import QUEUED, RUNNING, SUBMITTED, SUCCEEDED_1, at, make, numbered

from xrunner.contracts import events as ev
from xrunner.scheduler.deadletters import abandonment
from xrunner.servicekit.deadletter import DeadLetter, permanent, printable


def letter(seq: int, projection: str = "gateway.jobs", error: str = "DataError: bad") -> DeadLetter:
    return DeadLetter(projection, seq, "xr.evt.job.acme.j.failed", error)


def test_a_running_job_whose_event_was_parked_is_failed_with_the_projection_and_the_error() -> None:
    poison = make(ev.JobStarted, 4, attempt=1, worker_id="w\x00", sandbox="process")
    history = numbered(*RUNNING[:3], poison)
    failed = abandonment(history, letter(4, "scheduler.jobs", "ValueError: nope"), at(5), "e-abandon")
    assert failed is not None
    assert (failed.attempt, failed.final, failed.abandoned, failed.occurred_at, failed.event_id) == (
        1, True, True, at(5), "e-abandon")
    assert failed.reason == "an event of this job could not be applied by scheduler.jobs: ValueError: nope"


def test_the_job_is_judged_without_the_parked_event() -> None:
    """A worker's `job.failed` that no projection could store leaves the job running for them: it is abandoned."""
    poison = make(ev.JobFailed, 9, attempt=1, reason="stderr \x00")
    history = numbered(*RUNNING, poison)
    failed = abandonment(history, letter(5), at(10), "e")
    assert failed is not None and failed.attempt == 1


def test_a_parked_submission_still_ends_the_job() -> None:
    failed = abandonment(numbered(SUBMITTED, QUEUED), letter(1), at(3), "e")
    assert failed is not None and failed.attempt == 0


@pytest.mark.parametrize("history", [numbered(*RUNNING, SUCCEEDED_1, make(ev.JobAttached, 11)), []],
                         ids=["ended", "unknown"])
def test_a_job_that_ended_or_does_not_exist_is_left_alone(history: list[tuple[int, ev.Event]]) -> None:
    assert abandonment(history, letter(6), at(20), "e") is None


def test_a_job_that_ended_after_a_parked_event_the_projections_could_not_follow_is_abandoned() -> None:
    """Without its `job.queued` a projection never sees the job leave `submitted`: its read model would hang there,
    so the job is ended for it (the log's own fold, already terminal, absorbs the failure)."""
    failed = abandonment(numbered(*RUNNING, SUCCEEDED_1), letter(2), at(20), "e")
    assert failed is not None and failed.attempt == 0


def test_an_abandoned_job_is_not_abandoned_twice() -> None:
    history = numbered(*RUNNING, make(ev.JobFailed, 9, attempt=1, reason="x", abandoned=True))
    assert abandonment(history, letter(4), at(20), "e") is None


def test_the_error_is_one_printable_ascii_line_of_bounded_length() -> None:
    assert printable("a\x00b\x1b[31mc\nd\u00e9\ud800") == "a b [31mc d\\xe9 "
    assert len(printable("x" * 10_000)) == 400


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence"), True),
        (asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"), True),
        (asyncpg.ProgramLimitExceededError("index row size exceeds"), True),
        (KeyError("pool"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (asyncpg.TooManyConnectionsError("too many"), False),
        (asyncpg.SerializationError("could not serialize"), False),
        (asyncpg.ConnectionDoesNotExistError("closed"), False),
        (asyncpg.InterfaceError("pool is closing"), False),
        (ConnectionResetError("reset"), False),
        (TimeoutError(), False),
    ],
)
def test_only_errors_of_the_event_itself_are_permanent(error: BaseException, expected: bool) -> None:
    assert permanent(error) is expected
