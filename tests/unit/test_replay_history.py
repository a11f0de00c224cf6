"""The pure parts of replay: export filters as subjects, NATS subject matching for the archive, archive segment names,
the import's line checks, a job id's creation time, and `as_of` points and prefixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from xrunner.cli.main import app
from xrunner.contracts import codec, lifecycle
from xrunner.contracts.events import JobQueued, JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.gateway.asof import parse_point, prefix, view_as_of
from xrunner.servicekit import history
from xrunner.servicekit.archive import Segment, check_retention, matches
from xrunner.servicekit.ids import created_at, new_id
from xrunner.servicekit.problems import ProblemError
from xrunner.servicekit.settings import CommonSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("flt", "expected"), [
    (history.Filter(), ["xr.evt.>"]),
    (history.Filter(tenant="acme"), ["xr.evt.job.acme.*.*", "xr.evt.tenant.acme.*"]),
    (history.Filter(job="j1"), ["xr.evt.job.*.j1.*"]),
    (history.Filter(job="j1", types=("job.started.v1", "queued")),
     ["xr.evt.job.*.j1.queued", "xr.evt.job.*.j1.started"]),
    (history.Filter(tenant="acme", types=("artifact.stored.v1",)),
     ["xr.evt.job.acme.*.artifact_stored", "xr.evt.tenant.acme.artifact_stored"]),
    (history.Filter(types=("configured",)),
     ["xr.evt.job.*.*.configured", "xr.evt.tenant.*.configured", "xr.evt.worker.*.configured"]),
])
def test_an_export_filter_names_the_subjects_it_takes(flt: history.Filter, expected: list[str]) -> None:
    assert flt.subjects() == expected


@pytest.mark.parametrize(("pattern", "subject", "matched"), [
    ("xr.evt.>", "xr.evt.job.a.j.started", True),
    ("xr.evt.job.a.j.*", "xr.evt.job.a.j.started", True),
    ("xr.evt.job.a.j.*", "xr.evt.job.a.k.started", False),
    ("xr.evt.job.*.j.*", "xr.evt.job.b.j.queued", True),
    ("xr.evt.job.a.j.*", "xr.evt.job.a.j", False),
    ("xr.evt.job.a.j.*", "xr.evt.job.a.j.started.more", False),
    ("xr.evt.>", "xr.evt", False),
])
def test_subjects_match_as_nats_matches_them(pattern: str, subject: str, matched: bool) -> None:
    assert matches(pattern, subject) is matched


@given(st.integers(1, 10**14), st.integers(0, 10**6), st.datetimes(min_value=datetime(2000, 1, 1),
                                                                    max_value=datetime(2999, 1, 1)))
def test_a_segment_is_what_its_key_names(first: int, extra: int, moment: datetime) -> None:
    segment = Segment(first, first + extra, moment.replace(minute=0, second=0, microsecond=0, tzinfo=UTC))
    assert Segment.parse(segment.key) == segment


def test_other_objects_are_not_segments() -> None:
    assert Segment.parse("archive/events/2026010100/notes.txt") is None
    assert Segment.parse("tenants/acme/jobs/x/1/out.txt") is None


@given(st.integers(0, 200_000_000_000_000))  # up to the year 8307
def test_a_job_id_tells_when_it_was_made(ms: int) -> None:
    made = created_at(new_id(ms))
    assert made is not None and round(made.timestamp() * 1000) == ms


def test_what_is_not_an_id_or_from_past_the_year_9999_has_no_creation_time() -> None:
    assert created_at("not-an-id") is None
    assert created_at(new_id(2**48 - 1)) is None


def submitted(job: str = "j1") -> JobSubmitted:
    return JobSubmitted(event_id=new_id(), occurred_at=T0, tenant="acme", job_id=job,
                        spec=JobSpec(workload=ProcessWorkload(argv=["true"])))


def line(seq: int, event: object, subject: str | None = None) -> bytes:
    data = codec.encode(event)
    record = history.Record(seq, subject or "xr.evt.job.acme.j1.submitted", msgspec.Raw(data))
    return history.encode_record(record)


@pytest.mark.parametrize(("text", "reason"), [
    (b"{not json\n", "not an exported event"),
    (b'{"seq": 1, "subject": "xr.evt.job.acme.j1.submitted", "payload": {"type": "job.nope.v1"}}\n',
     "payload is not a known event"),
])
def test_a_line_that_is_not_an_event_is_named(text: bytes, reason: str) -> None:
    with pytest.raises(history.BadLine, match=f"line 7: {reason}"):
        history.parse(7, text, 0)


def test_a_line_on_the_wrong_subject_or_out_of_order_is_named() -> None:
    with pytest.raises(history.BadLine, match=r"line 3: subject 'xr\.evt\.job\.acme\.j2\.submitted' does not match"):
        history.parse(3, line(5, submitted(), "xr.evt.job.acme.j2.submitted"), 0)
    with pytest.raises(history.BadLine, match="line 4: seq 5 is not after the previous line's 5"):
        history.parse(4, line(5, submitted()), 5)


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "soon", "2026-01-01T00:00:00", ""])
def test_a_point_is_a_positive_sequence_or_a_zoned_time(bad: str) -> None:
    assert parse_point("42") == 42
    assert parse_point("2026-01-01T00:00:00Z") == T0
    with pytest.raises(ProblemError) as raised:
        parse_point(bad)
    assert raised.value.problem.field == "as_of"


def test_a_time_takes_the_events_up_to_the_first_that_occurred_after_it() -> None:
    early = submitted()
    late = JobQueued(event_id=new_id(), occurred_at=T0 + timedelta(seconds=10), tenant="acme", job_id="j1",
                     pool="default")
    skewed = JobQueued(event_id=new_id(), occurred_at=T0 + timedelta(seconds=1), tenant="acme", job_id="j1",
                       pool="other")
    events = [(1, early), (2, late), (3, skewed)]
    assert prefix(events, T0 + timedelta(seconds=5)) == [(1, early)]  # not 3: it comes after a later event
    assert prefix(events, 2) == events[:2]
    assert view_as_of(events, T0 - timedelta(seconds=1)) is None
    assert view_as_of(events, 3) == lifecycle.replay(events)


def test_events_keeps_its_job_timeline_and_gains_export_and_import() -> None:
    result = CliRunner().invoke(app, ["events", "--help"])
    assert result.exit_code == 0
    assert "--job" in result.output and "export" in result.output and "import" in result.output


def test_the_stream_must_keep_events_until_the_archiver_wrote_them() -> None:
    check_retention(CommonSettings())  # the defaults: 33 days kept, 30 archived
    with pytest.raises(ValueError, match="drops events before they are archived"):
        check_retention(CommonSettings(events_max_age_s=30 * 86_400.0))
