"""Serves the local store's bytes at signed URLs (`/v1/blobs/<artifact id>[/thumbnail]?exp=&kid=&sig=`): no bearer
token, the signature is the credential. A single byte range, ETag / If-None-Match, and the headers that keep a
browser from running what it downloads; the file is streamed in chunks, so memory stays flat for any size."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from litestar import Response, get
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from litestar.response import Stream

from xrunner.artifacts import exposure, metrics
from xrunner.artifacts.catalog import Artifact, Catalog
from xrunner.artifacts.dependencies import Blobs, Index, Keys
from xrunner.artifacts.objects import file_range
from xrunner.artifacts.signing import Signature
from xrunner.servicekit.problems import ProblemError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
Unsatisfiable = Literal["unsatisfiable"]
OptionalQuery = Annotated[str | None, QueryParameter(required=False)]
ArtifactId = Annotated[str, PathParameter(pattern=r"^[0-9A-Za-z]{1,64}$")]


@dataclass(frozen=True, slots=True)
class Slice:
    start: int
    length: int


def byte_range(header: str | None, size: int) -> Slice | Unsatisfiable | None:
    """The one range a `Range` header asks for; None for the whole file (no header, a malformed one, or several
    ranges: answering all of it is allowed), "unsatisfiable" when it starts past the end."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        if not last:
            return None
        length = min(int(last), size)
        return Slice(size - length, length) if length > 0 else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    return Slice(start, end - start + 1) if end >= start else None


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def refused(reason: str) -> ProblemError:
    metrics.DOWNLOADS_REFUSED.labels(reason).inc()
    return ProblemError(403, f"signature_{reason}", "This download URL is not valid", detail=reason.replace("_", " "))


async def _signed(catalog: Catalog, keys: Keys, artifact_id: str, thumbnail: bool, exp: str | None,
                  kid: str | None, sig: str | None) -> tuple[Artifact, str, str]:
    """The artifact, object key and content type a valid signature grants; 403 for anything else, 410 once expired."""
    artifact = await catalog.get(artifact_id, None)
    if artifact is None or not (exp and exp.isdigit() and kid and sig):
        raise refused("invalid")
    key, content_type = artifact.key, artifact.content_type
    if thumbnail:
        preview = artifact.preview
        if preview is None or not preview.thumbnail_key:
            raise refused("invalid")
        key, content_type = preview.thumbnail_key, preview.thumbnail_content_type or "image/png"
    reason = keys.check("GET", key, artifact.tenant, Signature(int(exp), kid, sig), time.time())
    if reason is not None:
        raise refused(reason)
    if artifact.gone(datetime.now(UTC)):
        raise ProblemError(410, "artifact_expired", "The artifact was removed by retention", detail=artifact_id)
    return artifact, key, content_type


def _answer(path: Path, artifact: Artifact, content_type: str, etag: str, range_header: str | None,
            if_none_match: str | None) -> Response[bytes] | Stream:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ProblemError(410, "artifact_expired", "The artifact's file is gone", detail=artifact.id) from exc
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300",
               **exposure.headers(artifact.name, content_type)}
    if etag_matches(if_none_match, etag):
        metrics.DOWNLOADS.labels("304").inc()
        return Response(b"", status_code=304, headers=headers)
    chosen = byte_range(range_header, size)
    if chosen == "unsatisfiable":
        metrics.DOWNLOADS.labels("416").inc()
        raise ProblemError(416, "range_not_satisfiable", "The range starts past the end",
                           headers={"Content-Range": f"bytes */{size}"})
    part = chosen or Slice(0, size)
    if chosen is not None:
        headers["Content-Range"] = f"bytes {part.start}-{part.start + part.length - 1}/{size}"
    headers["Content-Length"] = str(part.length)
    status = 206 if chosen is not None else 200
    metrics.DOWNLOADS.labels(str(status)).inc()
    return Stream(_counted(file_range(path, part.start, part.length)), status_code=status, headers=headers,
                  media_type=content_type)


async def _counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        metrics.DOWNLOAD_BYTES.inc(len(chunk))
        yield chunk


async def _serve(catalog: Catalog, keys: Keys, blobs: Blobs, artifact_id: str, thumbnail: bool, exp: str | None,
                 kid: str | None, sig: str | None, range_header: str | None,
                 if_none_match: str | None) -> Response[bytes] | Stream:
    if blobs is None:
        raise ProblemError(404, "not_found", "This service's store presigns its own URLs")
    artifact, key, content_type = await _signed(catalog, keys, artifact_id, thumbnail, exp, kid, sig)
    etag = f'"{artifact.sha256}"' if not thumbnail else f'"{artifact.sha256}-thumbnail"'
    return _answer(blobs.path(key), artifact, content_type, etag, range_header, if_none_match)


RangeHeader = Annotated[str | None, HeaderParameter(name="Range", required=False)]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]


@get("/v1/blobs/{artifact_id:str}", tags=["blobs"], include_in_schema=False)
async def blob(catalog: Index, keys: Keys, blobs: Blobs, artifact_id: ArtifactId, exp: OptionalQuery = None,
               kid: OptionalQuery = None, sig: OptionalQuery = None, range_header: RangeHeader = None,
               if_none_match: IfNoneMatch = None) -> Response[bytes] | Stream:
    """An artifact's bytes, for a URL the artifacts API signed (no Authorization header)."""
    return await _serve(catalog, keys, blobs, artifact_id, False, exp, kid, sig, range_header, if_none_match)


@get("/v1/blobs/{artifact_id:str}/thumbnail", tags=["blobs"], include_in_schema=False)
async def thumbnail(catalog: Index, keys: Keys, blobs: Blobs, artifact_id: ArtifactId, exp: OptionalQuery = None,
                    kid: OptionalQuery = None, sig: OptionalQuery = None, range_header: RangeHeader = None,
                    if_none_match: IfNoneMatch = None) -> Response[bytes] | Stream:
    """An artifact's preview thumbnail, for a URL the artifacts API signed."""
    return await _serve(catalog, keys, blobs, artifact_id, True, exp, kid, sig, range_header, if_none_match)


BLOB_HANDLERS = [blob, thumbnail]
