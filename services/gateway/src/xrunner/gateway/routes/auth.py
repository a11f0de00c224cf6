"""Routes about the caller's credential: who it is, and stream tickets for the realtime edge (browsers'
EventSource and WebSocket cannot send an Authorization header, so they trade their token here for a one-time
ticket, ≤ 60 s, that the realtime edge accepts as `?ticket=`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from litestar import Controller, get, post

from xrunner.contracts.api import StreamTicket, Whoami
from xrunner.gateway.dependencies import TicketSecret, Who
from xrunner.servicekit.guards import READ
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.problems import ProblemError
from xrunner.servicekit.tickets import MAX_TTL_S, mint_ticket


class AuthRoutes(Controller):
    path = "/v1"
    tags = ["auth"]

    @get("/whoami", opt=READ, tags=["jobs"])
    async def whoami(self, who: Who) -> Whoami:
        return Whoami(subject=who.subject, tenant=who.tenant, scopes=sorted(who.scopes))

    @post("/stream-tickets", status_code=201, opt=READ)
    async def stream_ticket(self, who: Who, ticket_secret: TicketSecret) -> StreamTicket:
        """A one-time ticket for the realtime edge's streams, carrying your tenant and scopes."""
        now = int(time.time())
        if not ticket_secret:
            raise ProblemError(503, "tickets_unavailable", "Stream tickets are not configured (XR_TICKET_SECRET)")
        ticket = mint_ticket(ticket_secret, who, ttl_s=MAX_TTL_S, jti=new_id(), now=now)
        return StreamTicket(ticket=ticket, expires_at=datetime.fromtimestamp(now + MAX_TTL_S, UTC))
