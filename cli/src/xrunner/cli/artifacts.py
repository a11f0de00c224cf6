"""`xrunner artifacts JOB` lists a job's files (a table, or `--json`); `xrunner artifacts get JOB NAME [-o FILE]`
downloads one through its signed URL and checks its sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from xrunner.cli.client import ApiError, problem_error
from xrunner.cli.session import (
    DEFAULT_DATA,
    ArtifactsUrl,
    DataDir,
    JsonFlag,
    api_errors,
    app,
    artifacts_url,
    connection,
)
from xrunner.contracts import codec
from xrunner.contracts.api import ArtifactView

CHUNK = 1024 * 1024


def list_artifacts(base_url: str, token: str, job_id: str) -> tuple[bytes, list[ArtifactView]]:
    """The artifacts API's answer for the job, raw and decoded."""
    try:
        answer = httpx.get(f"{base_url}/v1/jobs/{job_id}/artifacts", headers={"Authorization": f"Bearer {token}"},
                           timeout=30)
    except httpx.HTTPError as exc:
        raise ApiError(0, None, f"cannot reach {base_url}: {exc}") from exc
    if answer.status_code >= 400:
        raise problem_error(answer.status_code, answer.content)
    return answer.content, codec.decode(answer.content, list[ArtifactView])


def download(artifact: ArtifactView, target: Path) -> None:
    """Stream the artifact's signed URL (no token) into `target`; removed again unless its sha256 matches."""
    digest = hashlib.sha256()
    partial = target.with_name(f".{target.name}.part")
    with httpx.stream("GET", artifact.url, timeout=60) as answer:
        if answer.status_code >= 400:
            raise problem_error(answer.status_code, answer.read())
        with partial.open("wb") as out:
            for chunk in answer.iter_bytes(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    if digest.hexdigest() != artifact.sha256:
        partial.unlink()
        raise ApiError(0, None, f"{artifact.name}: sha256 {digest.hexdigest()} is not the stored {artifact.sha256}")
    partial.replace(target)


def _table(job_id: str, items: list[ArtifactView]) -> Table:
    table = Table(title=f"artifacts of {job_id}", title_justify="left")
    for column in ("name", "attempt", "size", "type", "sha256", "preview", "expires"):
        table.add_column(column, justify="right" if column in ("attempt", "size") else "left")
    for item in items:
        preview = item.preview.kind if item.preview else "-"
        table.add_row(item.name, str(item.attempt), f"{item.size:,}", item.content_type, item.sha256[:12], preview,
                      item.expires_at.isoformat(timespec="seconds"))
    return table


@app.command(context_settings={"allow_interspersed_args": True})
def artifacts(
    words: Annotated[list[str], typer.Argument(help="JOB to list its artifacts, or `get JOB NAME` to download one.",
                                               metavar="JOB | get JOB NAME")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where `get` writes (default: ./<basename>).")]
    = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = DEFAULT_DATA,
    url: ArtifactsUrl = None,
) -> None:
    """List a job's artifacts (every attempt), or download one by name (the latest attempt's) and check it."""
    if len(words) not in (1, 3) or (len(words) == 3 and words[0] != "get"):
        raise typer.BadParameter("use `xrunner artifacts JOB` or `xrunner artifacts get JOB NAME`")
    job_id = words[0] if len(words) == 1 else words[1]
    with api_errors():
        raw, items = list_artifacts(artifacts_url(data_dir, url), connection(data_dir)[1], job_id)
        if len(words) == 1:
            if as_json:
                typer.echo(raw.decode())
            else:
                Console().print(_table(job_id, items))
            return
        _get(items, words[2], output)


def _get(items: list[ArtifactView], name: str, output: Path | None) -> None:
    matching = [item for item in items if item.name == name]
    if not matching:
        raise ApiError(404, None, f"no artifact named {name!r} (see `xrunner artifacts JOB`)")
    artifact = max(matching, key=lambda item: item.attempt)
    target = output or Path(name.rsplit("/", 1)[-1])
    download(artifact, target)
    typer.echo(f"{target}: {artifact.size} bytes, sha256 {artifact.sha256} checked", err=True)
