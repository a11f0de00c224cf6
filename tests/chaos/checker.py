"""Decides whether a chaos history kept the core's promises: every accepted job ends exactly once, no job runs twice
at the same time, and the read models equal the log. Pure: the history comes in as values, a verdict goes out."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from xrunner.contracts import events as ev
from xrunner.contracts import lifecycle

CHECKS = ("lost", "stuck", "failed_by_fault", "duplicate_terminal", "overlap", "read_model_drift", "rebuild_drift")
# Every chaos job's command exits 0: ending in one of these can only be the fault's doing.
FAULT_ENDS = ("failed", "timed_out", "expired")
ACCEPTED = (200, 201, 202, 429)  # an answer that names a job (429: refused, still a job that must end `rejected`)
MAX_EXAMPLES = 5

History = list[tuple[int, ev.Event]]


@dataclass(frozen=True)
class Submit:
    """One `POST /v1/jobs` as the client saw it; `status` None when no answer came. With no answer or a 5xx the
    outcome is unknown: the job may or may not have been logged."""

    key: str  # the Idempotency-Key sent, so an unanswered submit can still be found in the log
    tenant: str
    status: int | None
    job_id: str | None
    at: float

    @property
    def indeterminate(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass(frozen=True)
class Run:
    """One execution of a job's command, from the lines it appended to the run file (independent of the log)."""

    job_id: str
    attempt: int
    run: str  # tells two executions of the same attempt apart (the shell's pid)
    first: float  # wall-clock time of its first line
    last: float  # and of its last: the command was alive at least over [first, last]
    ended: bool


@dataclass(frozen=True)
class Observed:
    """Everything observed after the faults were healed and the deadline passed."""

    submits: Sequence[Submit]
    log: Mapping[str, History]  # job id -> its history in XR_EVENTS
    api: Mapping[str, str | None]  # job id -> state answered by GET /v1/jobs/{id} (None: no answer)
    read_model: Mapping[str, tuple[str, int]]  # job id -> (state, version) in the gateway's read model
    runs: Sequence[Run]
    rebuilds: Mapping[str, str | None]  # service -> None when rebuild equals live, else its report


@dataclass
class Verdict:
    """Counts per check, a few examples of each, and how many jobs were judged."""

    jobs: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    unanswered: int = 0  # indeterminate submits (their jobs are judged when the log has them)
    outcomes: dict[str, int] = field(default_factory=dict)  # how many jobs the API answered in each state

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    @property
    def failed(self) -> dict[str, int]:
        return {c: n for c, n in self.counts.items() if n}

    def add(self, check: str, example: str) -> None:
        self.counts[check] += 1
        if len(self.examples[check]) < MAX_EXAMPLES:
            self.examples[check].append(example)

    def summary(self) -> str:
        lines = [f"{self.jobs} jobs judged ({self.unanswered} submits unanswered), ended {self.outcomes}; "
                 f"failed checks: {self.failed or 'none'}"]
        lines += [f"  {c}: {e}" for c in CHECKS for e in self.examples[c]]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {"jobs": self.jobs, "unanswered": self.unanswered, "outcomes": self.outcomes, "counts": self.counts,
                "examples": {c: e for c, e in self.examples.items() if e}}


def check(observed: Observed) -> Verdict:
    """Judge `observed` on every check in CHECKS."""
    jobs = known_jobs(observed.submits, observed.log)
    verdict = Verdict(jobs=len(jobs), unanswered=sum(s.indeterminate for s in observed.submits),
                      outcomes=dict(Counter(str(observed.api.get(j)) for j in jobs)))
    for job_id in sorted(jobs):
        history = observed.log.get(job_id, [])
        _check_log(verdict, job_id, history)
        _check_views(verdict, job_id, history, observed)
    for first, second in overlapping(r for r in observed.runs if r.job_id in jobs):
        verdict.add("overlap", f"{first.job_id}: attempt {first.attempt} run {first.run} "
                               f"[{first.first:.2f}, {first.last:.2f}] overlaps attempt {second.attempt} run "
                               f"{second.run} [{second.first:.2f}, {second.last:.2f}]")
    for service, report in sorted(observed.rebuilds.items()):
        if report is not None:
            verdict.add("rebuild_drift", f"{service}: {report}")
    return verdict


def known_jobs(submits: Iterable[Submit], log: Mapping[str, History]) -> set[str]:
    """Jobs the API named in an answer, plus those an unanswered submit created (found by its key in the log)."""
    named = {s.job_id for s in submits if s.status in ACCEPTED and s.job_id}
    unanswered = {s.key for s in submits if s.indeterminate}
    by_key = {e.idempotency_key: job_id for job_id, history in log.items() for _, e in history
              if isinstance(e, ev.JobSubmitted) and e.idempotency_key}
    return named | {by_key[k] for k in unanswered if k in by_key}


def is_terminal_event(event: ev.Event) -> bool:
    """An event that ends a job (a failure that will be retried does not)."""
    if isinstance(event, ev.JobFailed):
        return event.final
    return isinstance(event, (ev.JobSucceeded, ev.JobTimedOut, ev.JobCancelled, ev.JobExpired, ev.JobRejected))


def _check_log(verdict: Verdict, job_id: str, history: History) -> None:
    ends = [(seq, type(e).__name__) for seq, e in history if is_terminal_event(e)]
    if not history:
        verdict.add("lost", f"{job_id}: accepted, but the log has no event of it")
    elif not ends:
        last = type(history[-1][1]).__name__
        verdict.add("lost", f"{job_id}: no terminal event in {len(history)} events (last {last})")
    if len(ends) > 1:
        verdict.add("duplicate_terminal", f"{job_id}: {len(ends)} terminal events {ends}")


def _check_views(verdict: Verdict, job_id: str, history: History, observed: Observed) -> None:
    state = observed.api.get(job_id)
    if state is None or not lifecycle.is_terminal(state):
        verdict.add("stuck", f"{job_id}: the API says {state or 'nothing'} after the deadline")
    elif state in FAULT_ENDS:
        verdict.add("failed_by_fault", f"{job_id}: a command that exits 0 ended {state}")
    folded = lifecycle.replay(history)
    expected = (folded.state, folded.version) if folded else None
    row = observed.read_model.get(job_id)
    if row != expected:
        verdict.add("read_model_drift", f"{job_id}: read model (state, version) {row} but the log folds to {expected}")


def overlapping(runs: Iterable[Run]) -> list[tuple[Run, Run]]:
    """Pairs of executions of one job that were alive at the same time (each as the earlier, the later)."""
    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    pairs = []
    for job_runs in by_job.values():
        ordered = sorted(job_runs, key=lambda r: r.first)
        for i, earlier in enumerate(ordered):
            pairs += [(earlier, later) for later in ordered[i + 1:] if later.first <= earlier.last]
    return pairs


def parse_runs(lines: Iterable[str]) -> list[Run]:
    """Executions from run-file lines `<start|tick|end> <job> <attempt> <run> <unix time>`; torn lines are skipped."""
    spans: dict[tuple[str, int, str], list[float]] = {}
    ended: set[tuple[str, int, str]] = set()
    for line in lines:
        parts = line.split()
        if len(parts) != 5 or parts[0] not in ("start", "tick", "end"):
            continue
        try:
            key, at = (parts[1], int(parts[2]), parts[3]), float(parts[4])
        except ValueError:
            continue
        span = spans.setdefault(key, [at, at])
        span[0], span[1] = min(span[0], at), max(span[1], at)
        if parts[0] == "end":
            ended.add(key)
    return [Run(job, attempt, run, first, last, (job, attempt, run) in ended)
            for (job, attempt, run), (first, last) in spans.items()]
