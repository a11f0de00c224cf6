"""Binds a durable pull consumer (a work queue's, acked explicitly), and counts what any consumer could not decode or
apply, and the events of types it does not know (a newer writer's), which it passes over."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from prometheus_client import Counter

DEAD_LETTERS = Counter("xrunner_dead_letters_total", "Messages a consumer could not decode or apply, and passed",
                       ["consumer"])
UNKNOWN_EVENTS = Counter("xrunner_unknown_events_total", "Events of a type this version does not know, passed over",
                         ["consumer", "type"])


async def durable(js: JetStreamContext, stream: str, config: ConsumerConfig) -> JetStreamContext.PullSubscription:
    """Bind to the durable consumer `config.durable_name`, creating it the first time and otherwise bringing its
    editable settings (ack wait, max deliveries) to `config`: the server creates or updates."""
    assert config.durable_name
    await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=config.durable_name, stream=stream)
