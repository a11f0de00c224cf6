"""Binds a durable pull consumer (a work queue's, acked explicitly), creating it the first time."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError


async def durable(js: JetStreamContext, stream: str, config: ConsumerConfig) -> JetStreamContext.PullSubscription:
    """Bind to the durable consumer `config.durable_name`, creating it the first time."""
    assert config.durable_name
    try:
        await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=config.durable_name, stream=stream)
