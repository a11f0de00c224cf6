"""A pull's wait for the next message keeps its caller's cancellation: nats-py's `next_msg` (asyncio.wait_for on
Python 3.11) returns a message that arrives as the caller is cancelled, and a cancelled projector went on pulling."""

from __future__ import annotations

import asyncio
import types

import pytest
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError

from xrunner.servicekit.pull import _next_msg


def subscription() -> Subscription:
    """A core subscription's message queue, as the pull reads it, without a connection."""
    sub = Subscription.__new__(Subscription)
    sub._conn = types.SimpleNamespace(is_closed=False)  # type: ignore[assignment]
    sub._cb = None
    sub._pending_queue = asyncio.Queue()
    sub._pending_size = 0
    sub._pending_next_msgs_calls = {}
    return sub


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_wait_cancelled_as_its_message_arrives_is_cancelled_or_has_returned_it(turns: int) -> None:
    sub = subscription()
    waiting = asyncio.create_task(_next_msg(sub, 5.0))
    await asyncio.sleep(0)
    sub._pending_queue.put_nowait(Msg(sub._conn, subject="s", data=b"x"))  # type: ignore[arg-type]
    sub._pending_size += 1
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.done():  # it took the message before the cancel: nothing to lose
        assert waiting.result().data == b"x" and sub._pending_size == 0
        return
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sub._pending_queue.qsize() == 1, "the message stays queued for the next pull"


async def test_no_message_within_the_timeout_is_nats_timeout_error() -> None:
    with pytest.raises(NatsTimeoutError):
        await _next_msg(subscription(), 0.01)
