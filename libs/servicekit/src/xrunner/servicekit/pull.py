"""Pulls a batch from a JetStream pull consumer with one request that the server itself ends, so that no request
outlives the pull that sent it.

nats-py's `fetch` times out on the client at the moment the server expires its request; when the server's `408`
comes late, the next `fetch` takes it for its own answer and sends a second, lingering request (no `no_wait`) that
stays open after that `fetch` returns. The next message then goes to that orphan, and the `fetch` that receives it
waits for the rest of the orphan's batch until it expires: after an idle second, the next message was held for up
to a second (the "525 ms submit after an idle pause"). Here every request is `no_wait` with `expires`: the server
holds it until a message is available, delivers what is pending (up to the batch) and ends it with a status at once
when caught up, or with `408` when it expires; the pull returns only at that end (or a full batch), so the next
request is never sent while one is open."""

from __future__ import annotations

import asyncio
import json
import time

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError

STATUS = "Status"
HEARTBEAT = "100"
ENDED = {"404", "408"}  # no messages (caught up), request expired
GRACE_S = 5.0  # past the request's expiry: the connection is gone, the caller starts again


async def pull(sub: JetStreamContext.PullSubscription, batch: int, wait_s: float) -> list[Msg]:
    """Up to `batch` messages: waits up to `wait_s` for the first, and returns as soon as the server says nothing
    more is pending (an empty list when nothing came). Raises TimeoutError when the server never ends the request,
    APIError on any other status (the consumer was deleted, ...)."""
    request = {"batch": batch, "expires": int(wait_s * 1e9), "no_wait": True}
    await sub._nc.publish(sub._nms, json.dumps(request).encode(), reply=sub._deliver)
    core = sub._sub
    deadline = time.monotonic() + wait_s + GRACE_S
    msgs: list[Msg] = []
    while len(msgs) < batch:
        msg = await _next_msg(core, max(0.001, deadline - time.monotonic()))
        if _take(msg, msgs):
            return msgs
        while len(msgs) < batch and not core._pending_queue.empty():  # what already arrived
            msg = core._pending_queue.get_nowait()
            core._pending_queue.task_done()  # as `next_msg` does: a drain waits for every message to be done
            core._pending_size -= len(msg.data)
            if _take(msg, msgs):
                return msgs
    return msgs


async def _next_msg(core: Subscription, timeout: float) -> Msg:
    """`core.next_msg(timeout)` without its `asyncio.wait_for`, which on Python 3.11 returns a message that arrives
    as its caller is cancelled and so loses the cancellation: a projector cancelled that way went on pulling (a 408
    comes every second when idle) and whoever awaited it hung. `asyncio.timeout` keeps the cancellation."""
    if core._conn.is_closed:
        raise ConnectionClosedError
    try:
        async with asyncio.timeout(timeout):
            msg = await core._pending_queue.get()
    except TimeoutError:
        raise ConnectionClosedError if core._conn.is_closed else NatsTimeoutError from None
    core._pending_size -= len(msg.data)
    core._pending_queue.task_done()  # as `next_msg` does: a drain waits for every message to be done
    return msg


def _take(msg: Msg, msgs: list[Msg]) -> bool:
    """Keep a message; True when `msg` ends the request."""
    status = msg.headers.get(STATUS) if msg.headers else None
    if status is None:
        msgs.append(msg)
        return False
    if status == HEARTBEAT:
        return False
    if status in ENDED:
        return True
    raise APIError.from_msg(msg)
