"""Who is connecting: a bearer token (API clients) or a one-time stream ticket from the gateway (browsers). A
ticket's `jti` is claimed in KV `xr_tickets` on first use, so a replayed ticket is refused by every process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyWrongLastSequenceError

from xrunner.contracts import subjects
from xrunner.servicekit.auth import AuthError, JwtVerifier, Principal, bearer
from xrunner.servicekit.tickets import verify_ticket


@dataclass(frozen=True)
class Session:
    principal: Principal
    expires_at: float  # the connection ends when its credential expires


class Authenticator:
    def __init__(self, verifier: JwtVerifier, ticket_secret: str, js: JetStreamContext) -> None:
        self.verifier, self.ticket_secret, self.js = verifier, ticket_secret, js

    async def session(self, authorization: str | None, ticket: str | None) -> Session:
        if ticket:
            principal, jti, expires = verify_ticket(self.ticket_secret, ticket)
            kv = await self.js.key_value(subjects.TICKETS_BUCKET)
            try:
                await kv.create(jti, b"used")
            except (KeyWrongLastSequenceError, APIError) as exc:
                raise AuthError("this stream ticket was already used") from exc
            return Session(principal, expires)
        token = bearer(authorization)
        principal = self.verifier.verify(token)
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp", time.time() + 3600)
        return Session(principal, float(exp))
