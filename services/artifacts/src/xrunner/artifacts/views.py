"""What the API shows of an artifact: its metadata, a fresh signed URL, and its preview (text and archive entries
only when the preview itself is asked for)."""

from __future__ import annotations

from xrunner.artifacts.catalog import Artifact, StoredPreview
from xrunner.artifacts.signer import Signer
from xrunner.contracts.api import ArtifactPreview, ArtifactView


async def artifact_view(artifact: Artifact, signer: Signer, now: float) -> ArtifactView:
    signed = await signer.download(artifact, now)
    preview = await preview_view(artifact, artifact.preview, signer, now, full=False) if artifact.preview else None
    return ArtifactView(
        id=artifact.id,
        job_id=artifact.job_id,
        attempt=artifact.attempt,
        name=artifact.name,
        size=artifact.size,
        sha256=artifact.sha256,
        content_type=artifact.content_type,
        stored_at=artifact.stored_at,
        expires_at=artifact.expires_at,
        url=signed.url,
        url_expires_at=signed.expires_at,
        preview=preview,
    )


async def preview_view(artifact: Artifact, stored: StoredPreview, signer: Signer, now: float,
                       *, full: bool) -> ArtifactPreview:
    thumbnail_url = None
    if stored.thumbnail_key:
        content_type = stored.thumbnail_content_type or "image/png"
        thumbnail_url = (await signer.thumbnail(artifact, stored.thumbnail_key, content_type, now)).url
    return ArtifactPreview(
        kind=stored.kind,
        reason=stored.reason,
        text=stored.text if full else None,
        line_count=stored.line_count,
        page_count=stored.page_count,
        entries=stored.entries if full else [],
        truncated=stored.truncated,
        thumbnail_url=thumbnail_url,
        thumbnail_content_type=stored.thumbnail_content_type if stored.thumbnail_key else None,
    )
