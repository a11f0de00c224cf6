"""Serves the web console's built files under `/console/` (any unknown path gets index.html, so deep links work)
and its runtime `config.json`, made from the gateway's settings; public routes: the console signs in itself."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any

from litestar import Response, get
from litestar.params import PathParameter
from litestar.response import File
from litestar.types import ControllerRouterHandler

from xrunner.gateway.settings import GatewaySettings

PREFIX = "/console"
IMMUTABLE = "public, max-age=31536000, immutable"  # Vite names assets by content hash
REVALIDATE = "no-cache"


def console_config(settings: GatewaySettings) -> dict[str, Any]:
    """What the console reads at start: where each API is (empty: this origin) and how to sign in."""
    oidc = None
    if settings.console_oidc_issuer and settings.console_oidc_client_id:
        oidc = {"issuer": settings.console_oidc_issuer, "client_id": settings.console_oidc_client_id,
                "scope": settings.console_oidc_scope, "audience": settings.console_oidc_audience}
    return {"gateway": "", "realtime": settings.realtime_url, "artifacts": settings.artifacts_url,
            "auth": {"token": settings.console_token_signin, "oidc": oidc}}


def console_handlers(settings: GatewaySettings) -> list[ControllerRouterHandler]:
    """The console's routes, or none when no build directory is configured."""
    if not settings.console_dir:
        return []
    root = Path(settings.console_dir).resolve()
    config = console_config(settings)

    @get(f"{PREFIX}/config.json", include_in_schema=False, sync_to_thread=False)
    def config_json() -> Response[dict[str, Any]]:
        return Response(config, headers={"Cache-Control": REVALIDATE})

    @get(PREFIX, include_in_schema=False, sync_to_thread=False)
    def index() -> File:
        return _file(root, "/")

    @get(f"{PREFIX}/{{path:path}}", include_in_schema=False, sync_to_thread=False)
    def files(path: Annotated[str, PathParameter()]) -> File:
        return _file(root, path)

    return [config_json, index, files]


def _file(root: Path, path: str) -> File:
    """The build's file at `path`, or index.html for a route of the app (never anything outside `root`)."""
    wanted = (root / path.lstrip("/")).resolve()
    if not (wanted.is_relative_to(root) and wanted.is_file()):
        wanted = root / "index.html"
    cache = IMMUTABLE if wanted.parent.name == "assets" else REVALIDATE
    media_type = mimetypes.guess_type(wanted.name)[0] or "application/octet-stream"
    return File(wanted, filename=wanted.name, media_type=media_type, content_disposition_type="inline",
                headers={"Cache-Control": cache})
