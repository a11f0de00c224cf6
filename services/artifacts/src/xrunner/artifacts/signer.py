"""Turns an artifact into a short-lived download URL: S3 presigns one; for the local store the service signs its
own `/v1/blobs/<artifact id>` URL (see `signing`). Only keys under the artifact's tenant are ever signed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from xrunner.artifacts import exposure, metrics
from xrunner.artifacts.catalog import Artifact
from xrunner.artifacts.objects import Download, ObjectStore
from xrunner.artifacts.settings import MAX_URL_TTL_S
from xrunner.artifacts.signing import Keyring


@dataclass(frozen=True, slots=True)
class Signed:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Signer:
    keyring: Keyring
    store: ObjectStore
    store_name: str
    base_url: str  # where this service is reached, for the local store's URLs
    ttl_s: float = MAX_URL_TTL_S

    async def download(self, artifact: Artifact, now: float) -> Signed:
        return await self._sign(artifact, artifact.key, artifact.content_type, "", now)

    async def thumbnail(self, artifact: Artifact, key: str, content_type: str, now: float) -> Signed:
        return await self._sign(artifact, key, content_type, "/thumbnail", now)

    async def _sign(self, artifact: Artifact, key: str, content_type: str, suffix: str, now: float) -> Signed:
        if not key.startswith(f"tenants/{artifact.tenant}/"):
            raise ValueError(f"artifact {artifact.id} names a key outside its tenant's prefix")
        ttl = int(min(self.ttl_s, MAX_URL_TTL_S))
        expires = int(now) + ttl
        download = Download(artifact.name, content_type, exposure.disposition(artifact.name, content_type))
        url = await self.store.presign(key, download, ttl)
        if url is None:
            sig = self.keyring.sign("GET", key, expires, artifact.tenant)
            query = urlencode({"exp": sig.expires, "kid": sig.kid, "sig": sig.sig})
            url = f"{self.base_url}/v1/blobs/{artifact.id}{suffix}?{query}"
        metrics.URLS_SIGNED.labels(self.store_name, "thumbnail" if suffix else "download").inc()
        return Signed(url, datetime.fromtimestamp(expires, UTC))
