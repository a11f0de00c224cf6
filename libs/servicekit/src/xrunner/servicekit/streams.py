"""Declares xrunner's streams and KV buckets, idempotently, in one place; every service calls `declare`."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from xrunner.contracts import subjects

log = structlog.get_logger()

DUPLICATE_WINDOW_S = 120.0
WORKER_TTL_S = 6.0
STATS_TTL_S = 30.0
LEASE_TTL_S = 5.0
TICKETS_TTL_S = 300.0  # longer than any ticket lives, so a used one stays claimed until it expired


def stream_configs(events_max_age_s: float, logs_max_age_s: float, replicas: int = 1) -> list[StreamConfig]:
    """The log (history, age-limited), the run queues (work-queue), the job logs and the dead letters (events a
    projection could not apply, kept as long as the log), each kept on `replicas` servers of a cluster."""

    def stream(name: str, subject: str, retention: RetentionPolicy, max_age: float | None) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=[subject],
            retention=retention,
            max_age=max_age,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
            allow_direct=True,
            num_replicas=replicas,
        )

    return [
        stream(subjects.EVENTS_STREAM, subjects.EVENTS_ALL, RetentionPolicy.LIMITS, events_max_age_s),
        stream(subjects.RUN_STREAM, subjects.RUN_ALL, RetentionPolicy.WORK_QUEUE, None),
        stream(subjects.LOGS_STREAM, subjects.LOGS_ALL, RetentionPolicy.LIMITS, logs_max_age_s),
        stream(subjects.DEAD_STREAM, subjects.DEAD_ALL, RetentionPolicy.LIMITS, events_max_age_s),
    ]


def kv_configs(replicas: int = 1) -> list[KeyValueConfig]:
    def kv(bucket: str, ttl: float, storage: StorageType) -> KeyValueConfig:
        return KeyValueConfig(bucket=bucket, ttl=ttl, history=1, storage=storage, replicas=replicas)

    return [
        kv(subjects.WORKERS_BUCKET, WORKER_TTL_S, StorageType.MEMORY),
        kv(subjects.STATS_BUCKET, STATS_TTL_S, StorageType.MEMORY),
        kv(subjects.LEASES_BUCKET, LEASE_TTL_S, StorageType.FILE),
        kv(subjects.TICKETS_BUCKET, TICKETS_TTL_S, StorageType.FILE),
    ]


async def declare(
    js: JetStreamContext, events_max_age_s: float = 30 * 86_400, logs_max_age_s: float = 7 * 86_400,
    replicas: int = 1,
) -> None:
    """Create or update every stream and bucket so that they match this release's definitions; `replicas` > 1
    needs a JetStream cluster of at least that many servers (all services must declare the same number)."""
    for config in stream_configs(events_max_age_s, logs_max_age_s, replicas):
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
    for kv in kv_configs(replicas):
        await js.create_key_value(kv)


async def connect(url: str, name: str, on_reconnect: Callable[[], None] | None = None) -> Client:
    """A NATS connection that reconnects forever (then calls `on_reconnect`); callers check `is_connected` for
    readiness. `url` may list several servers of a cluster, comma-separated: any one that answers will do."""
    nc = Client()

    async def on_error(exc: Exception) -> None:
        log.warning("nats connection error", error=repr(exc))

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):  # closing on purpose is not worth a warning
            log.warning("nats disconnected; reconnecting")

    async def reconnected() -> None:
        log.info("nats reconnected")
        if on_reconnect is not None:
            on_reconnect()

    await nc.connect(
        [server.strip() for server in url.split(",")],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # a float works; the stub says int
        connect_timeout=5,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=reconnected,
    )
    return nc
