"""What every `xrunner` command shares: the Typer app, where the gateway and the realtime edge are, and how API
errors are shown."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from xrunner.cli.client import ApiError, Client
from xrunner.cli.edge import Edge
from xrunner.servicekit import version
from xrunner.servicekit.auth import SCOPES, mint

app = typer.Typer(
    help="xrunner: a distributed job runner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"xrunner {version.describe()}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version (and the git revision in a checkout).")] = False,
) -> None:
    """xrunner: a distributed job runner."""


tenants_app = typer.Typer(help="Tenants' shares and limits (needs an admin token).", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="XR_DATA_DIR", help="Where the embedded stack keeps state.")
]
DEFAULT_DATA = Path(".xrunner")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON answer as is.")]
RealtimeUrl = Annotated[str | None, typer.Option(
    "--realtime-url", envvar="XR_REALTIME_URL",
    help="The realtime edge (default: what `xrunner up` wrote, else the API's port + 1).")]
ArtifactsUrl = Annotated[str | None, typer.Option(
    "--artifacts-url", envvar="XR_ARTIFACTS_URL",
    help="The artifacts API (default: what `xrunner up` wrote, else the API's port + 2).")]


def env_file(data_dir: Path) -> Path:
    return data_dir / "env"


def saved_env(data_dir: Path) -> dict[str, str]:
    """The settings `xrunner up` wrote into the data dir (none when it never ran there)."""
    saved_file = env_file(data_dir)
    if not saved_file.exists():
        return {}
    return dict(line.split("=", 1) for line in saved_file.read_text().splitlines() if "=" in line)


def connection(data_dir: Path) -> tuple[str, str]:
    """API URL and token: XR_API_URL / XR_TOKEN, else what `xrunner up` wrote into the data dir."""
    url, token = os.environ.get("XR_API_URL"), os.environ.get("XR_TOKEN")
    if url is None or token is None:
        saved = saved_env(data_dir)
        url, token = url or saved.get("XR_API_URL"), token or saved.get("XR_TOKEN")
    if not url or not token:
        raise typer.BadParameter("set XR_API_URL and XR_TOKEN, or run `xrunner up` in this directory first")
    return url, token


def gateway(data_dir: Path) -> Client:
    return Client(*connection(data_dir))


def realtime_url(data_dir: Path, given: str | None) -> str:
    """The realtime edge: `given` (--realtime-url / XR_REALTIME_URL), else the one `xrunner up` wrote beside the
    API in use, else the API's port + 1 (where `xrunner up` puts it)."""
    return _beside_api(data_dir, given, "XR_REALTIME_URL", 1)


def artifacts_url(data_dir: Path, given: str | None) -> str:
    """The artifacts API: `given` (--artifacts-url / XR_ARTIFACTS_URL), else the one `xrunner up` wrote beside the
    API in use, else the API's port + 2 (where `xrunner up` puts it)."""
    return _beside_api(data_dir, given, "XR_ARTIFACTS_URL", 2)


def _beside_api(data_dir: Path, given: str | None, saved_as: str, port_offset: int) -> str:
    api, _ = connection(data_dir)
    saved = saved_env(data_dir)
    if given:
        return given
    if saved.get("XR_API_URL") == api and saved.get(saved_as):
        return saved[saved_as]
    parts = urlsplit(api)
    return f"{parts.scheme}://{parts.hostname}:{(parts.port or 80) + port_offset}"


def edge(data_dir: Path, given: str | None) -> Edge:
    return Edge(realtime_url(data_dir, given), connection(data_dir)[1])


@contextmanager
def api_errors() -> Iterator[None]:
    """Print a gateway error as `xrunner: <status> <code>: <detail>` and exit 2."""
    try:
        yield
    except ApiError as exc:
        typer.echo(f"xrunner: {exc}", err=True)
        raise typer.Exit(2) from exc


def dev_token(secret: str, tenant: str = "dev", scopes: list[str] | None = None, ttl_s: int = 30 * 86_400) -> str:
    return mint(secret, tenant=tenant, subject=f"{tenant}-user", scopes=scopes or list(SCOPES), issuer="xrunner",
                audience="xrunner", ttl_s=ttl_s, now=int(time.time()))
