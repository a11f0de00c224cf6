"""The HTTP side every service shares: /healthz, /readyz, /metrics, and serving an app with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any

import uvicorn
from litestar import Litestar, MediaType, Response, get
from litestar.enums import ScopeType
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, Counter

from xrunner.servicekit import metrics as exposure
from xrunner.servicekit import tracing

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]

RESPONSES = Counter("xrunner_http_responses_total", "HTTP responses sent, by status class (2xx, 4xx, 5xx ...)",
                    ["code"])


def health_handlers(ready: ReadyCheck, metrics_token: str = "") -> list[ControllerRouterHandler]:
    """Liveness, readiness (every dependency up, and which process answers: a supervisor that picked the port
    knows whether its own child or another holder of that port is ready) and Prometheus metrics; series that name a
    tenant only for a scrape that presents `metrics_token` as its bearer token (none without one)."""

    @get("/healthz", media_type=MediaType.JSON, include_in_schema=False, sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", media_type=MediaType.JSON, include_in_schema=False)
    async def readyz() -> Response[dict[str, Any]]:
        checks = await ready()
        ok = all(checks.values())
        return Response({"ready": ok, "checks": checks, "pid": os.getpid()}, status_code=200 if ok else 503)

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics(authorization: Annotated[str | None, HeaderParameter(name="Authorization")] = None) -> Response[bytes]:
        level = exposure.access(authorization, metrics_token)
        if level is exposure.Access.DENIED:
            return Response(b"invalid metrics token\n", status_code=401, media_type=MediaType.TEXT,
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(exposure.exposition(level), media_type=CONTENT_TYPE_LATEST)

    return [healthz, readyz, metrics]


def health_app(ready: ReadyCheck, metrics_token: str, extra: Sequence[ControllerRouterHandler] = ()) -> Litestar:
    """An app with only the shared endpoints (plus `extra`), for services without a public API."""
    return Litestar(route_handlers=[*health_handlers(ready, metrics_token), *extra], openapi_config=None)


def counted(app: ASGIApp) -> ASGIApp:
    """`app`, counting each HTTP response by its status class as it starts (a stream counts when it opens)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                RESPONSES.labels(f"{message['status'] // 100}xx").inc()
            await send(message)

        await app(scope, receive, counting_send)

    return wrapped


def traced(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: each HTTP request runs in a span of the client's `traceparent` (a new trace without one), so
    what it logs and every event it appends carry the trace; the response's `traceparent` names that span."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None)
        with tracing.span(sent) as here:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", []), (b"traceparent", here.header().encode())]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, send_traced)

    return middleware


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the service's runtime decides when and in which order to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# An idle keep-alive connection is kept this long: longer than clients keep theirs (httpx 5 s, browsers ~60 s), so a
# client does not reuse a connection the server is closing at that instant (uvicorn's 5 s default raced httpx's 5 s
# and lost requests as `ReadError` under the peers benchmark).
KEEP_ALIVE_S = 75


class HttpServer:
    """Serves an ASGI app with uvicorn inside the service's own event loop; `port` is known after start."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(counted(app), host=host, port=port, log_level="warning", lifespan="on",
                                access_log=False, loop="none", http="httptools", timeout_keep_alive=KEEP_ALIVE_S)
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
