"""Reads the scheduler's published snapshot from KV `xr_stats`; a missing global key means none is published yet."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from xrunner.contracts import codec, subjects
from xrunner.contracts.stats import STATS_GLOBAL_KEY, GlobalStats, TenantLimits, TenantStats, tenant_stats_key

log = structlog.get_logger()
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """The global stats and the stats of the tenants asked for (those the scheduler has published)."""

    global_stats: GlobalStats | None = None
    tenants: dict[str, TenantStats] = field(default_factory=dict)

    @property
    def at(self) -> datetime | None:
        return self.global_stats.at if self.global_stats else None

    def default_limits(self) -> TenantLimits:
        """The scheduler's defaults for unconfigured tenants, else the built-in ones."""
        return self.global_stats.default_limits if self.global_stats else TenantLimits()

    def limits(self, tenant: str) -> TenantLimits:
        """The tenant's effective limits as the scheduler last saw them."""
        stats = self.tenants.get(tenant)
        return stats.limits if stats else self.default_limits()


async def read(js: JetStreamContext, tenants: Iterable[str] | None = ()) -> Snapshot:
    """The global stats and the stats of `tenants` (None: of every tenant the global stats list)."""
    try:
        kv = await js.key_value(subjects.STATS_BUCKET)
    except NotFoundError:
        return Snapshot()
    global_stats = await _get(kv, STATS_GLOBAL_KEY, GlobalStats)
    if global_stats is None:
        return Snapshot()
    names = list(dict.fromkeys(global_stats.tenants if tenants is None else tenants))
    found = await asyncio.gather(*(_get(kv, tenant_stats_key(name), TenantStats) for name in names))
    return Snapshot(global_stats, {name: stats for name, stats in zip(names, found, strict=True) if stats})


async def _get(kv: KeyValue, key: str, type_: type[T]) -> T | None:
    """One decoded value; None when the key is missing, deleted, expired or unreadable."""
    try:
        entry = await kv.get(key)
    except NotFoundError:
        return None
    try:
        return codec.decode(entry.value or b"", type_)
    except msgspec.MsgspecError as exc:
        log.warning("unreadable stats snapshot", key=key, error=str(exc))
        return None
