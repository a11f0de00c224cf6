"""`python -m xrunner.scheduler replay [--from SEQ] [--to SEQ] [--set tenant.acme.weight=2 ...]`: reads the log
and prints the replay's diff with the recorded decisions (exit 0 when there is none), or with `--set` what the model
says would have happened."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import msgspec
from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.scheduler.app import defaults
from xrunner.scheduler.replay import Verification, verify
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.whatif import BadOverride, Outcome, Overrides, parse_overrides, record, what_if
from xrunner.servicekit.eventstore import read_raw
from xrunner.servicekit.runtime import Runtime

SHOWN = 20


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m xrunner.scheduler replay", description=__doc__)
    parser.add_argument("--from", dest="since", type=int, default=0,
                        help="check the decisions after this log sequence (the state is folded from 1)")
    parser.add_argument("--to", dest="until", type=int, default=None, help="read the log up to this sequence")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="tenant.<name>.weight|max_inflight=V, pool.<name>.slots|workers=N (repeatable)")
    options = parser.parse_args(list(argv))
    try:
        options.parsed = parse_overrides(options.overrides)
    except BadOverride as exc:
        parser.error(str(exc))
    return options


async def read_log(js: JetStreamContext, until: int | None) -> AsyncIterator[tuple[int, ev.Event]]:
    """The log's job and tenant events in order (undecodable ones are passed, as the projections pass them)."""
    async for seq, data in read_raw(js, subjects.EVENTS_STREAM, "xr.evt.>"):
        if until is not None and seq > until:
            return
        try:
            event = codec.decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(event, (ev.JobEvent, ev.TenantConfigured)):
            yield seq, event


async def replay(runtime: Runtime) -> int:
    """The `replay` command: its options are the runtime's arguments."""
    options = parse(runtime.args)
    settings = runtime.settings
    assert isinstance(settings, SchedulerSettings)
    js = await runtime.connect_nats()
    log = [item async for item in read_log(js, options.until)]
    overrides: Overrides = options.parsed
    if overrides.tenants or overrides.pools:
        print(report_what_if(what_if(record(log), defaults(settings), overrides)))
        return 0
    result = verify(log, defaults(settings), options.since)
    print(report(result))
    return 0 if result.equal else 1


def report(result: Verification) -> str:
    lines = [f"replayed {result.rounds} rounds, {result.decisions} recorded dispatches; {result.lost_appends} "
             f"picks whose append lost its compare-and-set; {result.unexplained} dispatches recorded without `why`"]
    for d in result.differences[:SHOWN]:
        lines.append(f"DIFFERENT round at {_when(d.at)} (basis {d.basis}) rank {d.rank}: recorded {d.recorded}, "
                     f"replayed {d.replayed}")
    lines.append("the replay equals the recorded decisions" if result.equal
                 else f"{len(result.differences)} decisions DIFFER from the record")
    return "\n".join(lines)


def report_what_if(outcome: Outcome) -> str:
    lines = [f"{outcome.jobs} jobs: {outcome.earlier} would start earlier, {outcome.later} later, "
             f"{outcome.unchanged} unchanged (the model without overrides puts {outcome.model_matches} of "
             f"{outcome.recorded} recorded dispatches exactly where the record has them)"]
    lines += [f"  tenant {tenant}: starts {_delta(mean)} on average" for tenant, mean in outcome.by_tenant.items()]
    for moved in outcome.moved[:SHOWN]:
        delta = moved.delta_s
        change = _delta(delta) if delta is not None else ("never" if moved.what_if is None else "starts now")
        lines.append(f"  {moved.key[0]}/{moved.key[1]}: {_when(moved.baseline)} -> {_when(moved.what_if)} ({change})")
    return "\n".join(lines)


def _delta(seconds: float) -> str:
    return f"{abs(seconds):.3f}s {'earlier' if seconds < 0 else 'later'}"


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="milliseconds") if at else "not dispatched"
