"""What every `xrunner` command shares: the Typer app, where the gateway is, and how API errors are shown."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from xrunner.cli.client import ApiError, Client
from xrunner.cli.projections import projections_app
from xrunner.servicekit.auth import SCOPES, mint

app = typer.Typer(
    help="xrunner: a distributed job runner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

tenants_app = typer.Typer(help="Tenants' shares and limits (needs an admin token).", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(projections_app, name="projections")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="XR_DATA_DIR", help="Where the embedded stack keeps state.")
]
DEFAULT_DATA = Path(".xrunner")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON answer as is.")]


def env_file(data_dir: Path) -> Path:
    return data_dir / "env"


def connection(data_dir: Path) -> tuple[str, str]:
    """API URL and token: XR_API_URL / XR_TOKEN, else what `xrunner up` wrote into the data dir."""
    url, token = os.environ.get("XR_API_URL"), os.environ.get("XR_TOKEN")
    saved_file = env_file(data_dir)
    if (url is None or token is None) and saved_file.exists():
        saved = dict(line.split("=", 1) for line in saved_file.read_text().splitlines() if "=" in line)
        url, token = url or saved.get("XR_API_URL"), token or saved.get("XR_TOKEN")
    if not url or not token:
        raise typer.BadParameter("set XR_API_URL and XR_TOKEN, or run `xrunner up` in this directory first")
    return url, token


def gateway(data_dir: Path) -> Client:
    return Client(*connection(data_dir))


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
