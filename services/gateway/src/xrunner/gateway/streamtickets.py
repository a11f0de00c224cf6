"""Mints stream tickets: browsers' EventSource and WebSocket cannot send an Authorization header, so they trade
their token here for a one-time ticket (≤ 60 s) that the realtime edge accepts as `?ticket=`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from litestar import Request, post
from litestar.datastructures import State

from xrunner.contracts.api import StreamTicket
from xrunner.gateway.problems import ProblemError
from xrunner.gateway.routes import READ, principal
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.tickets import MAX_TTL_S, mint_ticket


@post("/v1/stream-tickets", status_code=201, guards=READ, tags=["auth"])
async def stream_ticket(request: Request[Any, Any, State]) -> StreamTicket:
    """A one-time ticket for the realtime edge's streams, carrying your tenant and scopes."""
    now = int(time.time())
    secret: str = request.app.state.ticket_secret
    if not secret:
        raise ProblemError(503, "tickets_unavailable", "Stream tickets are not configured (XR_TICKET_SECRET)")
    ticket = mint_ticket(secret, principal(request), ttl_s=MAX_TTL_S, jti=new_id(), now=now)
    return StreamTicket(ticket=ticket, expires_at=datetime.fromtimestamp(now + MAX_TTL_S, UTC))
