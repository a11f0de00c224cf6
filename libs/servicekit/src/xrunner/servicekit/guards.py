"""Who may call what, in every service with an HTTP API: one guard authenticates every route that declares a scope
and checks that scope, and the caller's principal is handed to handlers as the `who` dependency."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from xrunner.servicekit.auth import AuthError, JwtVerifier, Principal, bearer
from xrunner.servicekit.problems import ProblemError

QUERY_TOKENS = frozenset({"access_token", "token", "jwt", "bearer"})  # never accepted: URLs end up in logs
SCOPE = "scope"  # the key of a handler's `opt` naming the scope it needs; a handler without one is public


def scoped(scope: str) -> dict[str, Any]:
    """A handler's `opt` that makes it need `scope`."""
    return {SCOPE: scope}


def required_scope(handler: BaseRouteHandler) -> str | None:
    scope: str | None = handler.opt.get(SCOPE)
    return scope


def authorize(verifier: JwtVerifier) -> Guard:
    """The guard of every route: on one that needs a scope it authenticates the bearer token before anything else
    (even body parsing) and checks the scope, leaving the principal in `connection.state.principal`. A token in
    the query string is refused outright."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        scope = required_scope(handler)
        if scope is None:
            return
        try:
            who = await authenticate(verifier, connection)
        except AuthError as exc:
            raise ProblemError(
                401,
                "unauthenticated",
                "Missing or invalid bearer token",
                detail=str(exc),
                headers={"WWW-Authenticate": 'Bearer realm="xrunner"'},
            ) from exc
        if not who.can(scope):
            raise ProblemError(403, "forbidden", f"This token lacks the {scope!r} scope")
        connection.state.principal = who

    return guard


async def authenticate(verifier: JwtVerifier, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal of the request's Authorization header; a verifier that may fetch keys runs off the loop."""
    if any(name.lower() in QUERY_TOKENS for name in connection.query_params):
        raise AuthError("tokens are not accepted in the query string; send them in the Authorization header")
    token = bearer(connection.headers.get("authorization"))
    if verifier.fetches_keys:
        return await anyio.to_thread.run_sync(verifier.verify, token)
    return verifier.verify(token)


def principal(request: Request[Any, Any, State]) -> Principal:
    """The `who` dependency: the principal the guard authenticated."""
    who: Principal = request.state.principal
    return who


READ, WRITE, ADMIN = scoped("jobs:read"), scoped("jobs:write"), scoped("admin")
