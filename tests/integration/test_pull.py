"""Pulling from a JetStream pull consumer (`servicekit.pull`): no request outlives the pull that sent it, so a
message that comes after an idle wait is delivered to the next pull and not held by a lingering request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from xrunner.contracts import subjects
from xrunner.servicekit.pull import pull

SUBJECT = "xr.evt.worker.pull-test.started"


@pytest.fixture
async def sub(js: JetStreamContext) -> AsyncIterator[JetStreamContext.PullSubscription]:
    config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.NONE, filter_subject=SUBJECT,
                            mem_storage=True, inactive_threshold=30.0)
    info = await js.add_consumer(subjects.EVENTS_STREAM, config)
    assert info.name is not None
    subscription = await js.pull_subscribe_bind(info.name, stream=subjects.EVENTS_STREAM)
    yield subscription
    await subscription.unsubscribe()
    await js.delete_consumer(subjects.EVENTS_STREAM, info.name)


async def waiting(sub: JetStreamContext.PullSubscription) -> int:
    """Pull requests the server still holds open for this consumer."""
    return (await sub.consumer_info()).num_waiting or 0


async def test_an_idle_pull_ends_with_its_request_and_the_next_one_gets_what_came_after(
    js: JetStreamContext, sub: JetStreamContext.PullSubscription
) -> None:
    assert await pull(sub, 256, 0.2) == []
    assert await waiting(sub) == 0
    await js.publish(SUBJECT, b"after the idle wait", stream=subjects.EVENTS_STREAM)
    got = await pull(sub, 256, 5.0)
    assert [m.data for m in got] == [b"after the idle wait"]
    assert await waiting(sub) == 0


async def test_a_pull_returns_what_is_pending_up_to_its_batch_and_leaves_no_request_open(
    js: JetStreamContext, sub: JetStreamContext.PullSubscription
) -> None:
    for i in range(5):
        await js.publish(SUBJECT, b"%d" % i, stream=subjects.EVENTS_STREAM)
    first = await pull(sub, 3, 5.0)
    assert await waiting(sub) == 0
    rest = await pull(sub, 256, 5.0)
    assert await waiting(sub) == 0
    assert [m.data for m in first + rest] == [b"%d" % i for i in range(5)]
    assert [m.metadata.sequence.consumer for m in first + rest] == [1, 2, 3, 4, 5]
