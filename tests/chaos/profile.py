"""How hard a chaos run pushes: short by default (CI), long by hand (`XR_CHAOS_ROUNDS=10 XR_CHAOS_JOBS=300`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SHORT_JOBS = 60


@dataclass(frozen=True)
class Profile:
    """Rounds per nemesis, jobs per round, and how long jobs may take to end after the fault is healed."""

    rounds: int = 1
    jobs: int = SHORT_JOBS
    settle_s: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Profile:
        return cls(rounds=int(env.get("XR_CHAOS_ROUNDS", "1")), jobs=int(env.get("XR_CHAOS_JOBS", str(SHORT_JOBS))),
                   settle_s=float(env.get("XR_CHAOS_SETTLE_S", "15")))

    @property
    def long(self) -> bool:
        return self.rounds > 1 or self.jobs > SHORT_JOBS

    @property
    def timeout_s(self) -> float:
        """A bound on one nemesis's test: start-up, then per round the load, the fault and the settling, then the
        observation and both rebuilds."""
        return 60 + self.rounds * (30 + self.settle_s + self.jobs * 25 * 0.2 / 8)
