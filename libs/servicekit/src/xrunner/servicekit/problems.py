"""Builds RFC 9457 problem+json answers with a stable `code`: the one place every service's HTTP errors take shape."""

from __future__ import annotations

from typing import Any

from litestar import Response

from xrunner.contracts import codec
from xrunner.contracts.api import Problem

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://xrunner.dev/problems/"


def problem(status: int, code: str, title: str, **fields: Any) -> Problem:
    """A problem whose `type` is derived from its `code`; `fields` are Problem's optional members (detail, ...)."""
    return Problem(type=f"{PROBLEM_BASE}{code}", title=title, status=status, code=code, **fields)


def respond(body: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    """`body` as an HTTP answer: its status, media type application/problem+json, and `headers`."""
    return Response(codec.encode(body), status_code=body.status, media_type=PROBLEM_JSON, headers=headers)


class ProblemError(Exception):
    """An expected failure with its HTTP status and stable code; an exception handler answers it with `respond`."""

    def __init__(
        self, status: int, code: str, title: str, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(title)
        self.problem = problem(status, code, title, **fields)
        self.headers = headers or {}
