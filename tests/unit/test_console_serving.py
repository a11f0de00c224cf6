"""The gateway serves the console's build under /console/: files by path with cache headers that suit Vite's hashed
assets, index.html for the app's own routes (deep links), config.json from its settings, and nothing outside the
build directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from xrunner.gateway.console import console_handlers
from xrunner.gateway.settings import GatewaySettings


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "dist" / "assets").mkdir(parents=True)
    (tmp_path / "dist" / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "dist" / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for you")
    return tmp_path / "dist"


def client(settings: GatewaySettings) -> TestClient[Litestar]:
    return TestClient(Litestar(route_handlers=console_handlers(settings)))


def test_files_are_served_with_their_type_and_hashed_assets_are_cached_for_good(build: Path) -> None:
    with client(GatewaySettings(console_dir=str(build))) as c:
        asset = c.get("/console/assets/index-abc123.js")
        page = c.get("/console/")
    assert asset.status_code == 200 and asset.text == "console.log(1)"
    assert asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    assert page.headers["content-type"].startswith("text/html") and page.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/console/jobs/01abc", "/console/submit", "/console/../secret.txt",
                                  "/console/%2e%2e/secret.txt", "/console/assets/missing.js"])
def test_an_app_route_or_anything_outside_the_build_gets_index_html(build: Path, path: str) -> None:
    with client(GatewaySettings(console_dir=str(build))) as c:
        answer = c.get(path)
    assert answer.status_code in (200, 404)
    assert "not for you" not in answer.text
    if answer.status_code == 200:
        assert "<title>console</title>" in answer.text


def test_config_json_says_where_each_api_is_and_how_to_sign_in(build: Path) -> None:
    settings = GatewaySettings(console_dir=str(build), realtime_url="http://rt:8701", artifacts_url="http://art:8702",
                               console_oidc_issuer="https://idp.example.com", console_oidc_client_id="xrunner-console")
    with client(settings) as c:
        config = c.get("/console/config.json").json()
    assert config == {"gateway": "", "realtime": "http://rt:8701", "artifacts": "http://art:8702",
                      "auth": {"token": True, "oidc": {"issuer": "https://idp.example.com",
                                                       "client_id": "xrunner-console", "scope": "openid",
                                                       "audience": ""}}}


def test_without_a_build_directory_there_is_no_console() -> None:
    assert console_handlers(GatewaySettings()) == []
