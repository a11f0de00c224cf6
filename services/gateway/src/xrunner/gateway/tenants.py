"""A tenant's configured limits, as its latest `tenant.configured` event says."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import TenantConfigured
from xrunner.contracts.stats import TenantLimits


async def configured_limits(js: JetStreamContext, tenant: str) -> TenantLimits | None:
    """The limits of the tenant's latest `tenant.configured` event; None when it was never configured."""
    try:
        raw = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.tenant_events(tenant, "configured"))
    except NotFoundError:
        return None
    return TenantLimits.from_event(codec.decode(raw.data or b"", TenantConfigured))
