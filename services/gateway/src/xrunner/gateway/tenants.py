"""The admin API for tenants' shares and limits: appends `tenant.configured`, reads back the latest one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.datastructures import State
from litestar.params import Parameter
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.contracts import codec, subjects
from xrunner.contracts.api import ConfigureTenant
from xrunner.contracts.events import TenantConfigured
from xrunner.contracts.stats import TenantLimits
from xrunner.gateway import snapshot
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.routes import ADMIN, principal
from xrunner.servicekit.ids import new_id

TENANT = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="A tenant name")]


async def configured_limits(js: JetStreamContext, tenant: str) -> TenantLimits | None:
    """The limits of the tenant's latest `tenant.configured` event; None when it was never configured."""
    try:
        raw = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.tenant_events(tenant, "configured"))
    except NotFoundError:
        return None
    return TenantLimits.from_event(codec.decode(raw.data or b"", TenantConfigured))


class TenantRoutes(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]

    @put("/{tenant:str}", guards=ADMIN)
    async def configure(self, request: Request[Any, Any, State], tenant: TENANT, data: ConfigureTenant) -> TenantLimits:
        """Set a tenant's share and limits; the scheduler applies them from the log."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        event = TenantConfigured(
            event_id=new_id(),
            occurred_at=datetime.now(UTC),
            tenant=tenant,
            weight=data.weight,
            max_inflight=data.max_inflight,
            max_queued=data.max_queued,
            submit_rate_per_s=data.submit_rate_per_s,
            configured_by=who.subject,
        )
        await jobs.store.append(event, msg_id=event.event_id)  # each configuration is a new fact: no CAS
        return TenantLimits.from_event(event)

    @get("/{tenant:str}", guards=ADMIN)
    async def limits(self, request: Request[Any, Any, State], tenant: TENANT) -> TenantLimits:
        """The tenant's configured limits, else the scheduler's defaults (`configured: false`)."""
        jobs: Jobs = request.app.state.jobs
        configured = await configured_limits(jobs.js, tenant)
        if configured is not None:
            return configured
        defaults = (await snapshot.read(jobs.js)).default_limits()
        return msgspec.structs.replace(defaults, configured=False)
