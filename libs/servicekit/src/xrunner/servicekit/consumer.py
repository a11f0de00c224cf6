"""Durable pull consumers with explicit ack: transient errors are retried, undecodable messages terminated."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import FetchTimeoutError, NotFoundError
from prometheus_client import Counter

from xrunner.servicekit.eventstore import ConflictError

log = structlog.get_logger()

DEAD_LETTERS = Counter("xrunner_consumer_dead_letters_total", "Messages terminated as unprocessable", ["consumer"])
RETRIED = Counter("xrunner_consumer_retries_total", "Messages left for redelivery after an error", ["consumer"])

TRANSIENT = (asyncpg.PostgresError, OSError, ConflictError, asyncio.TimeoutError)


async def durable(js: JetStreamContext, stream: str, config: ConsumerConfig) -> JetStreamContext.PullSubscription:
    """Bind to the durable consumer `config.durable_name`, creating it the first time."""
    assert config.durable_name
    try:
        await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=config.durable_name, stream=stream)


async def consume(
    sub: JetStreamContext.PullSubscription,
    handle: Callable[[Msg], Awaitable[None]],
    *,
    name: str,
    batch: int = 64,
) -> None:
    """Fetch and handle messages forever. `handle` acks; on a transient error the message is nak'ed with a delay
    (JetStream's max_deliver bounds the retries), on a decode error it is terminated and counted."""
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except (TimeoutError, FetchTimeoutError):
            continue
        for msg in msgs:
            try:
                await handle(msg)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                DEAD_LETTERS.labels(name).inc()
                log.error("unprocessable message terminated", consumer=name, subject=msg.subject, error=str(exc))
                await msg.term()
            except TRANSIENT as exc:
                RETRIED.labels(name).inc()
                log.warning("message will be retried", consumer=name, subject=msg.subject, error=repr(exc))
                await msg.nak(delay=0.5)
