"""A browser frontend on another origin (the console, @xrunner/sdk in a browser) may call the realtime edge and the
artifacts service from a configured origin, reading the headers the SDK needs; any other origin is not allowed.
(The gateway's CORS is checked in tests/integration/test_api_contract.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from xrunner.artifacts.app import Infra as ArtifactsInfra
from xrunner.artifacts.app import create_app as create_artifacts_app
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.realtime import attach
from xrunner.realtime.app import create_http_app
from xrunner.realtime.routes import Edge
from xrunner.servicekit.auth import JwtVerifier

UI = "https://console.example.com"
STRANGER = "https://evil.example.com"
SECRET = "s" * 32


async def _ready() -> dict[str, bool]:
    return {"nats": True}


def realtime(origins: list[str]) -> Litestar:
    # A preflight is answered before any handler runs: the edge's connections are never used here.
    edge = Edge(None, None, None, 15.0, 10, 10)  # type: ignore[arg-type]
    return create_http_app(edge, attach.Terminals(None), _ready, "", origins)  # type: ignore[arg-type]


def artifacts(origins: list[str]) -> Litestar:
    infra = ArtifactsInfra(None, None, None, JwtVerifier(SECRET, issuer="a", audience="b"), _ready,  # type: ignore[arg-type]
                           "http://127.0.0.1:8702")
    return create_artifacts_app(ArtifactsSettings(jwt_secret=SECRET, cors_origins=origins), infra)


def preflight(client: TestClient[Any], path: str, origin: str, headers: str) -> Any:
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": headers})


@pytest.mark.parametrize(("build", "path", "headers"), [
    (realtime, "/v1/events", "authorization,last-event-id"),
    (realtime, "/v1/jobs/abc/logs/stream", "authorization"),
    (artifacts, "/v1/jobs/abc/artifacts", "authorization"),
    (artifacts, "/v1/artifacts/abc/preview", "authorization"),
])
def test_a_configured_origin_is_allowed_and_another_is_not(build: Any, path: str, headers: str) -> None:
    with TestClient(build([UI])) as client:
        allowed = preflight(client, path, UI, headers)
        refused = preflight(client, path, STRANGER, headers)
        simple = client.get("/healthz", headers={"Origin": UI})
        stranger = client.get("/healthz", headers={"Origin": STRANGER})
    assert allowed.status_code in (200, 204), allowed.text
    assert allowed.headers["access-control-allow-origin"] == UI
    assert "GET" in allowed.headers["access-control-allow-methods"]
    for header in headers.split(","):
        assert header in allowed.headers["access-control-allow-headers"].lower()
    assert refused.headers.get("access-control-allow-origin") != STRANGER
    assert simple.headers["access-control-allow-origin"] == UI
    assert stranger.headers.get("access-control-allow-origin") not in (STRANGER, "*")


@pytest.mark.parametrize("build", [realtime, artifacts])
def test_without_configured_origins_there_are_no_cors_headers(build: Any) -> None:
    with TestClient(build([])) as client:
        response = preflight(client, "/v1/events", UI, "authorization")
        simple = client.get("/healthz", headers={"Origin": UI})
    for answer in (response, simple):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers
