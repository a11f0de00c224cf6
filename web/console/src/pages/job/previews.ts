// Which viewer an artifact gets from its preview (docs/artifacts.md): text (JSON shown as JSON), an image or a PDF's
// first page as a thumbnail, an archive's entries, or why there is none; and when its signed URL needs renewing.

import type { ArtifactPreview, ArtifactView } from "@xrunner/sdk";

export type Viewer =
  | { kind: "pending" }
  | { kind: "text"; json: boolean; text: string; lines: number | null; truncated: boolean }
  | { kind: "image"; url: string }
  | { kind: "pdf"; url: string | null; pages: number | null }
  | { kind: "archive"; entries: { name: string; size: number }[]; truncated: boolean }
  | { kind: "none"; reason: string };

export function isJson(artifact: Pick<ArtifactView, "name" | "content_type">): boolean {
  return /(^|[/+])json\b/.test(artifact.content_type) || /\.json$/i.test(artifact.name);
}

/** The viewer for `artifact`, given its full preview (`null` while it has not been fetched or derived). */
export function viewerFor(artifact: ArtifactView, full: ArtifactPreview | null): Viewer {
  const preview = full ?? artifact.preview ?? null;
  if (!preview) return { kind: "pending" };
  switch (preview.kind) {
    case "text":
      if (full?.text == null) return { kind: "pending" };
      return { kind: "text", json: isJson(artifact), text: full.text, lines: full.line_count ?? null, truncated: full.truncated ?? false };
    case "image":
      return preview.thumbnail_url ? { kind: "image", url: preview.thumbnail_url } : { kind: "none", reason: "no thumbnail" };
    case "pdf":
      return { kind: "pdf", url: preview.thumbnail_url ?? null, pages: preview.page_count ?? null };
    case "archive":
      if (!full) return { kind: "pending" };
      return { kind: "archive", entries: full.entries ?? [], truncated: full.truncated ?? false };
    default:
      return { kind: "none", reason: preview.reason || "no preview for this type" };
  }
}

/** Whether showing the viewer needs `GET /v1/artifacts/{id}/preview` (lists leave out text and entries). */
export function needsFullPreview(artifact: ArtifactView): boolean {
  const kind = artifact.preview?.kind;
  return kind === "text" || kind === "archive";
}

/** Whether the signed URL is still good for a click `marginMs` from `now` (it lives at most 300 s). */
export function urlFresh(artifact: Pick<ArtifactView, "url_expires_at">, now: number, marginMs = 10_000): boolean {
  return Date.parse(artifact.url_expires_at) - marginMs > now;
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
