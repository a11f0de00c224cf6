"""The artifacts API (v1): a job's artifacts, one artifact, and its preview, each with fresh signed URLs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import PathParameter, QueryParameter
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.artifacts.catalog import Artifact, Catalog
from xrunner.artifacts.dependencies import Index, Log, Sign, Who
from xrunner.artifacts.views import artifact_view, preview_view
from xrunner.contracts import subjects
from xrunner.contracts.api import ArtifactPreview, ArtifactView
from xrunner.servicekit.guards import READ
from xrunner.servicekit.problems import ProblemError

ID = r"^[0-9A-Za-z]{1,64}$"
JOB_ID = Annotated[str, PathParameter(pattern=ID, description="A job id")]
ARTIFACT_ID = Annotated[str, PathParameter(pattern=ID, description="An artifact id")]


async def job_exists(js: JetStreamContext, tenant: str, job_id: str) -> bool:
    """Whether the log holds any event of the tenant's job (another tenant's job is not found)."""
    try:
        await js.get_msg(subjects.EVENTS_STREAM, seq=1, subject=subjects.job_history(tenant, job_id), next=True,
                         direct=True)
    except NotFoundError:
        return False
    return True


async def live_artifact(catalog: Catalog, tenant: str, artifact_id: str) -> Artifact:
    """The tenant's artifact: 404 when it has none of that id, 410 once retention removed it."""
    artifact = await catalog.get(artifact_id, tenant)
    if artifact is None:
        raise ProblemError(404, "artifact_not_found", "No such artifact", detail=artifact_id)
    if artifact.gone(datetime.now(UTC)):
        raise ProblemError(410, "artifact_expired", "The artifact was removed by retention", detail=artifact_id)
    return artifact


class ArtifactRoutes(Controller):
    path = "/v1"
    tags = ["artifacts"]

    @get("/jobs/{job_id:str}/artifacts", opt=READ)
    async def job_artifacts(
        self, who: Who, catalog: Index, signer: Sign, js: Log, job_id: JOB_ID,
        attempt: Annotated[int | None, QueryParameter(ge=1, description="Only this attempt's artifacts")] = None,
    ) -> list[ArtifactView]:
        """Every artifact of the job not yet removed by retention (all attempts unless `attempt`), each with a
        download URL valid for at most 300 s; `[]` for a job without any."""
        found = await catalog.of_job(who.tenant, job_id, attempt, datetime.now(UTC))
        if not found and not await job_exists(js, who.tenant, job_id):
            raise ProblemError(404, "job_not_found", "No such job", detail=job_id)
        now = time.time()
        return [await artifact_view(artifact, signer, now) for artifact in found]

    @get("/artifacts/{artifact_id:str}", opt=READ)
    async def artifact(self, who: Who, catalog: Index, signer: Sign, artifact_id: ARTIFACT_ID) -> ArtifactView:
        """One artifact's metadata with a fresh download URL; 410 once retention removed it."""
        return await artifact_view(await live_artifact(catalog, who.tenant, artifact_id), signer, time.time())

    @get("/artifacts/{artifact_id:str}/preview", opt=READ)
    async def preview(self, who: Who, catalog: Index, signer: Sign, artifact_id: ARTIFACT_ID) -> ArtifactPreview:
        """The artifact's preview: the text (first 64 KiB) with its line count, an archive's entries, a signed
        thumbnail URL for images and PDFs, or kind `none` with the reason; 404 `preview_pending` until derived."""
        artifact = await live_artifact(catalog, who.tenant, artifact_id)
        if artifact.preview is None:
            raise ProblemError(404, "preview_pending", "No preview has been derived yet", detail=artifact_id)
        return await preview_view(artifact, artifact.preview, signer, time.time(), full=True)
