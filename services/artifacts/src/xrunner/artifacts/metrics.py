"""The artifact service's metrics: URLs signed, downloads served, previews made or failed by kind and their time,
artifacts expired. (The preview derivation increments the preview series.)"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

URLS_SIGNED = Counter("xrunner_artifact_urls_signed_total", "Download URLs signed", ["store", "what"])
DOWNLOADS = Counter("xrunner_artifact_downloads_total", "Downloads the service served itself (local store)",
                    ["status"])
DOWNLOAD_BYTES = Counter("xrunner_artifact_download_bytes_total", "Bytes the service served itself (local store)")
DOWNLOADS_REFUSED = Counter("xrunner_artifact_downloads_refused_total",
                            "Signed URLs refused: expired, unknown key, bad signature", ["reason"])
PREVIEWS_MADE = Counter("xrunner_artifact_previews_total", "Previews derived, by kind", ["kind"])
PREVIEWS_FAILED = Counter("xrunner_artifact_preview_failures_total",
                          "Files that got no preview because deriving one failed or hit a limit, by kind", ["kind"])
PREVIEW_SECONDS = Histogram("xrunner_artifact_preview_seconds", "Time to derive a preview, by kind", ["kind"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
EXPIRED = Counter("xrunner_artifacts_expired_total", "Artifacts removed by retention")
