"""Why a job went before another (gateway/reasons.py): an idle tenant, a smaller weighted share, our own queue, or
our tenant not competing; how long each dispatch waited; and redaction of other tenants for a caller who is not an
admin."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from xrunner.contracts import events as ev
from xrunner.contracts.decisions import DispatchWhy, Standing
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.gateway import reasons

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def standing(tenant: str, share: float = 0.0, idle: bool = False) -> Standing:
    return Standing(tenant=tenant, idle=idle, rank_share=share, running_share=share, usage_share=0.0, weight=1.0,
                    inflight=1, max_inflight=10, queued=1)


def dispatch(tenant: str, job_id: str, who: Standing | None, competing: Sequence[Standing] = (), *,
             at: float = 0.0, position: int = 1) -> ev.JobDispatched:
    why = None if who is None else DispatchWhy(tenant=who, competing=list(competing), queue_position=position)
    return ev.JobDispatched(event_id=job_id, occurred_at=T0 + timedelta(seconds=at), tenant=tenant, job_id=job_id,
                            attempt=1, pool="default", why=why)


OURS = dispatch("acme", "mine", standing("acme", 0.4), at=9.0)
CASES = {
    "an idle tenant is served first": (dispatch("globex", "x", standing("globex", idle=True)),
                                       "its tenant had nothing in flight: served first"),
    "a smaller weighted share goes first": (dispatch("globex", "x", standing("globex", 0.1), [standing("acme", 0.4)]),
                                            "its tenant's weighted share 0.1000 was below yours, 0.4000"),
    "our tenant was not competing": (dispatch("globex", "x", standing("globex", 0.7)),
                                     "its tenant's weighted share was 0.7000; your tenant was not competing then "
                                     "(at its max_inflight, or no job of it could start)"),
    "our own queue": (dispatch("acme", "x", standing("acme", 0.3), position=1),
                      "ahead in your tenant's queue (priority, then first come; position 1)"),
    "a dispatch recorded before why existed": (dispatch("globex", "x", None),
                                               "dispatched before decisions recorded their inputs"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_job_that_went_before_says_why(case: tuple[ev.JobDispatched, str]) -> None:
    other, reason = case
    assert reasons.went_before(5, other, OURS, "acme", admin=False).reason == reason


def test_another_tenants_job_is_anonymous_except_to_an_admin() -> None:
    other = dispatch("globex", "theirs", standing("globex", idle=True))
    hidden = reasons.went_before(5, other, OURS, "acme", admin=False)
    shown = reasons.went_before(5, other, OURS, "acme", admin=True)
    assert (hidden.tenant, hidden.job_id, shown.tenant, shown.job_id) == ("another tenant", None, "globex", "theirs")
    why = dispatch("acme", "m", standing("acme"), [standing("globex"), standing("initech")]).why
    assert why is not None
    assert [c.tenant for c in reasons.redact(why, "acme", admin=False).competing] == ["other-1", "other-2"]
    assert reasons.redact(why, "acme", admin=True) == why


def test_each_dispatch_waited_since_the_event_that_queued_its_attempt() -> None:
    spec = JobSpec(workload=ProcessWorkload(argv=["true"]))
    common = {"tenant": "acme", "job_id": "mine"}
    history: list[tuple[int, ev.Event]] = [
        (1, ev.JobSubmitted(event_id="1", occurred_at=T0, spec=spec, **common)),
        (2, ev.JobQueued(event_id="2", occurred_at=T0 + timedelta(seconds=1), pool="", **common)),
        (7, dispatch("acme", "mine", standing("acme"), at=4.0)),
        (9, ev.JobLost(event_id="9", occurred_at=T0 + timedelta(seconds=10), attempt=1, worker_id="w", **common)),
        (12, dispatch("acme", "mine", None, at=12.5)),
    ]
    assert reasons.queue_entries(history) == {7: 2, 12: 9}
    found = reasons.decisions(history, {7: [(5, dispatch("globex", "x", standing("globex", idle=True)))]}, {7: 3},
                              "acme", admin=False)
    assert [(d.kind, d.waited_s) for d in found] == [("queued", None), ("dispatched", 3.0), ("lost", None),
                                                     ("dispatched", 2.5)]
    assert (len(found[1].went_before), found[1].went_before_more, found[3].why) == (1, 3, None)
