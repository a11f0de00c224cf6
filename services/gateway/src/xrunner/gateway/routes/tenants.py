"""The admin API for tenants' shares and limits: appends `tenant.configured`, reads back the latest one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, put
from litestar.params import JSONBody, Parameter

from xrunner.contracts.api import ConfigureTenant
from xrunner.contracts.events import TenantConfigured
from xrunner.contracts.stats import TenantLimits
from xrunner.gateway import snapshot
from xrunner.gateway.dependencies import Store, Stream, Who
from xrunner.gateway.tenants import configured_limits
from xrunner.servicekit.guards import ADMIN
from xrunner.servicekit.ids import new_id

TENANT = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="A tenant name")]


class TenantRoutes(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]

    @put("/{tenant:str}", opt=ADMIN)
    async def configure(self, who: Who, store: Store, tenant: TENANT, data: JSONBody[ConfigureTenant]) -> TenantLimits:
        """Set a tenant's share and limits; the scheduler applies them from the log."""
        event = TenantConfigured(
            event_id=new_id(),
            occurred_at=datetime.now(UTC),
            tenant=tenant,
            weight=data.weight,
            max_inflight=data.max_inflight,
            max_queued=data.max_queued,
            submit_rate_per_s=data.submit_rate_per_s,
            artifact_ttl_s=data.artifact_ttl_s,
            configured_by=who.subject,
        )
        await store.append(event, msg_id=event.event_id)  # each configuration is a new fact: no CAS
        return TenantLimits.from_event(event)

    @get("/{tenant:str}", opt=ADMIN)
    async def limits(self, js: Stream, tenant: TENANT) -> TenantLimits:
        """The tenant's configured limits, else the scheduler's defaults (`configured: false`)."""
        configured = await configured_limits(js, tenant)
        if configured is not None:
            return configured
        defaults = (await snapshot.read(js)).default_limits()
        return msgspec.structs.replace(defaults, configured=False)
