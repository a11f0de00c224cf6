"""Turns every error a service's HTTP API raises into problem+json with a stable `code`, and documents that in
OpenAPI."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute
from litestar.types import ExceptionHandlersMap

from xrunner.contracts.api import Problem
from xrunner.contracts.spec import NO_NUL
from xrunner.servicekit.guards import required_scope
from xrunner.servicekit.problems import PROBLEM_JSON, ProblemError, problem, respond

NO_NUL_MEANS = "without NUL characters (\\u0000 cannot be stored or passed to a process)"

_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


def _problem_error(_: Request[Any, Any, Any], exc: ProblemError) -> Response[bytes]:
    return respond(exc.problem, exc.headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    first = exc.extra[0] if isinstance(exc.extra, list) and exc.extra else {}
    key = first.get("key") if isinstance(first, dict) else None
    message = first.get("message") if isinstance(first, dict) else None
    message = message.replace(f"matching regex {NO_NUL!r}", NO_NUL_MEANS) if isinstance(message, str) else None
    field = None if not key else ("$" if key == "data" else f"$.{key}")
    detail = f"{message} at {field}" if message and field else (message or exc.detail)
    return respond(problem(400, "invalid_request", "Invalid request", detail=detail, field=field))


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = _CODES.get(exc.status_code, "error")
    title = code.replace("_", " ").capitalize()
    return respond(problem(exc.status_code, code, title, detail=exc.detail), dict(exc.headers or {}))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return respond(problem(500, "internal", "Internal error", detail=type(exc).__name__))


HANDLERS: ExceptionHandlersMap = {
    ProblemError: _problem_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}

# The problems any authenticated route can answer, beside its own; documented so clients and schemathesis know them.
GUARDED_PROBLEMS = (400, 401, 403, 404, 409, 413, 415, 429)


def _spec(status: int) -> ResponseSpec:
    code = _CODES[status]
    return ResponseSpec(Problem, description=f"`{code}` and other problems", media_type=PROBLEM_JSON,
                        generate_examples=False)


class DocumentProblems(ReceiveRoutePlugin):
    """Declares in OpenAPI that every route that needs a scope answers its errors as problem+json (litestar would
    otherwise document its own 400 body as application/json)."""

    def receive_route(self, route: BaseRoute) -> None:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and required_scope(handler) is not None:
                handler.responses = {**{s: _spec(s) for s in GUARDED_PROBLEMS}, **(handler.responses or {})}
