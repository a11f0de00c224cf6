"""Wires the artifact service: connections, the index projector, the preview consumer, its HTTP endpoints, and the
index's rebuild."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from xrunner.artifacts.index import ArtifactIndex
from xrunner.artifacts.isolation import Isolated, Limits
from xrunner.artifacts.objects import open_objects
from xrunner.artifacts.previewer import Previewer
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.servicekit.http import HttpServer, health_app
from xrunner.servicekit.projector import Projector
from xrunner.servicekit.replay import rebuild_command
from xrunner.servicekit.runtime import Runtime


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, ArtifactsSettings)
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, files("xrunner.artifacts") / "sql")
    runtime.spawn(Projector(js, pool, ArtifactIndex()).run(), "projector")
    objects = open_objects(settings)
    isolated = Isolated(Limits(settings.preview_timeout_s, settings.preview_cpu_s, settings.preview_memory_bytes))
    if settings.previews:
        previewer = Previewer(js, pool, objects, isolated, max_bytes=settings.preview_max_bytes)
        runtime.spawn(previewer.run(), "previews")
    server = HttpServer(health_app(runtime.ready, settings.metrics_token), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()

    async def stop() -> None:
        await server.stop()
        await isolated.close()
        await objects.close()

    return stop


rebuild = rebuild_command("xrunner.artifacts", lambda _: ArtifactIndex(), [("artifacts", "id")])
