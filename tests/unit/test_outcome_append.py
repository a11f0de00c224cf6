"""An attempt's outcome reaches the log however long the log is away, as long as the worker answers for the
attempt (`runner.until_stored`): a cluster's election outlasting the store's own retries once left a finished job
`running` for good (tests/e2e/test_cluster.py caught it)."""

from __future__ import annotations

import nats.errors
import pytest
from nats.js.errors import ServiceUnavailableError

from xrunner.worker.runner import until_stored


class Log:
    """An append that fails with `errors` in turn, then stores."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.tries, self.stored = list(errors), 0, False

    async def append(self) -> None:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        self.stored = True


async def test_an_outcome_is_appended_after_passing_failures_while_the_lease_is_held() -> None:
    log = Log(nats.errors.TimeoutError(), ServiceUnavailableError(), nats.errors.NoRespondersError())
    assert await until_stored(log.append, lambda: True, pause_s=0.001)
    assert (log.tries, log.stored) == (4, True)


async def test_trying_stops_once_the_lease_lapses_and_says_it_did_not_store() -> None:
    log = Log(*[nats.errors.TimeoutError() for _ in range(10)])
    checks = iter([True, True, False])
    assert not await until_stored(log.append, lambda: next(checks), pause_s=0.001)
    assert (log.tries, log.stored) == (3, False)


async def test_a_refusal_that_is_not_passing_is_raised_at_once() -> None:
    log = Log(ValueError("a bug, not an outage"))
    with pytest.raises(ValueError):
        await until_stored(log.append, lambda: True, pause_s=0.001)
    assert log.tries == 1
