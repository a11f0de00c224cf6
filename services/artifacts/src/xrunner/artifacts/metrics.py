"""The artifact service's metrics: URLs signed, downloads served, previews made or failed by kind and their time,
artifacts expired."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

URLS_SIGNED = Counter("xrunner_artifact_urls_signed_total", "Download URLs signed", ["store", "what"])
DOWNLOADS = Counter("xrunner_artifact_downloads_total", "Downloads the service served itself (local store)",
                    ["status"])
DOWNLOAD_BYTES = Counter("xrunner_artifact_download_bytes_total", "Bytes the service served itself (local store)")
DOWNLOADS_REFUSED = Counter("xrunner_artifact_downloads_refused_total",
                            "Signed URLs refused: expired, unknown key, bad signature", ["reason"])
PREVIEWS = Counter("xrunner_artifacts_previews_total",
                   "Artifacts previewed, by the type their bytes show (text, image, pdf, zip, tar, other) and outcome"
                   " (made; none: a type without previews; failed: unreadable, hostile, too large or too slow)",
                   ["kind", "outcome"])
PREVIEW_SECONDS = Histogram("xrunner_artifacts_preview_seconds", "Time to fetch an artifact and derive its preview",
                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
EXPIRED = Counter("xrunner_artifacts_expired_total", "Artifacts removed by retention")
