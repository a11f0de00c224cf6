// The job's artifacts with previews: fetched when the page opens and again when the job stores or previews one
// (its events on the tenant's stream), downloads through the signed URL (renewed when it is about to expire).
// Artifact text is shown as text nodes only. The artifacts service folds an `artifact.previewed` into its index
// after the event reaches this page, and no later event says it has: while an artifact's preview is pending, the
// list is fetched again a few times, backing off (RETRIES_MS), then on the next event only.

import { useCallback, useEffect, useState, type MouseEvent } from "react";
import type { ArtifactPreview, ArtifactView } from "@xrunner/sdk";
import { useConsole } from "../../app/session";
import { formatBytes, needsFullPreview, urlFresh, viewerFor, type Viewer } from "./previews";

const RETRIES_MS = [250, 500, 1000, 2000, 4000, 8000];

export function Artifacts({ jobId, revision }: { jobId: string; revision: number }) {
  const { client } = useConsole();
  const [artifacts, setArtifacts] = useState<ArtifactView[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fetchList = (retry: number) => {
      client.artifacts.list(jobId).then(
        (found) => {
          if (!current) return;
          setArtifacts(found);
          const wait = RETRIES_MS[retry];
          if (wait !== undefined && found.some((a) => !a.preview)) timer = setTimeout(() => fetchList(retry + 1), wait);
        },
        (e: unknown) => current && setError(String(e)),
      );
    };
    fetchList(0);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [client, jobId, revision]);

  return (
    <section aria-labelledby="artifacts-title" className="space-y-2">
      <h2 id="artifacts-title" className="text-lg font-semibold">Artifacts</h2>
      {error && <p role="alert" className="text-sm text-red-700 dark:text-red-400">Artifacts unavailable: {error}</p>}
      {artifacts === null && !error && <p className="text-sm text-slate-600 dark:text-slate-400">Loading…</p>}
      {artifacts?.length === 0 && <p className="text-sm text-slate-600 dark:text-slate-400">None.</p>}
      <ul className="space-y-3">
        {artifacts?.map((a) => <ArtifactItem key={`${a.id}:${a.preview?.kind ?? "pending"}`} artifact={a} />)}
      </ul>
    </section>
  );
}

function ArtifactItem({ artifact }: { artifact: ArtifactView }) {
  const { client } = useConsole();
  const [full, setFull] = useState<ArtifactPreview | null>(null);
  useEffect(() => {
    if (!needsFullPreview(artifact)) return;
    let current = true;
    client.artifacts.preview(artifact.id).then((p) => current && setFull(p), () => undefined);
    return () => {
      current = false;
    };
  }, [client, artifact]);
  const download = useCallback(
    async (event: MouseEvent<HTMLAnchorElement>) => {
      if (urlFresh(artifact, Date.now())) return;
      event.preventDefault();
      const fresh = await client.artifacts.get(artifact.id);
      window.location.assign(fresh.url);
    },
    [client, artifact],
  );
  const viewer = viewerFor(artifact, full);
  return (
    <li data-testid="artifact" data-name={artifact.name} data-viewer={viewer.kind} className="rounded border border-slate-200 p-3 dark:border-slate-700">
      <div className="flex flex-wrap items-baseline gap-x-3 gap-y-1">
        <span className="font-mono text-sm font-medium break-all">{artifact.name}</span>
        <span className="text-xs text-slate-500 dark:text-slate-400">
          {formatBytes(artifact.size)} · {artifact.content_type} · attempt {artifact.attempt}
        </span>
        <a href={artifact.url} onClick={download} download={artifact.name} className="ml-auto text-sm text-blue-700 underline dark:text-blue-400">
          Download<span className="sr-only"> {artifact.name}</span>
        </a>
      </div>
      <div className="mt-2">
        <Preview viewer={viewer} name={artifact.name} />
      </div>
    </li>
  );
}

function Preview({ viewer, name }: { viewer: Viewer; name: string }) {
  switch (viewer.kind) {
    case "pending":
      return <p className="text-xs text-slate-600 dark:text-slate-400">Preview pending…</p>;
    case "text":
      return (
        <div>
          <pre data-testid="artifact-text" data-json={viewer.json} className="max-h-72 overflow-auto rounded bg-slate-100 p-2 font-mono text-xs whitespace-pre dark:bg-slate-800">
            {viewer.text}
          </pre>
          <p className="mt-1 text-xs text-slate-600 dark:text-slate-400">
            {viewer.json ? "JSON · " : ""}
            {viewer.lines !== null ? `${viewer.lines.toLocaleString()} lines` : ""}
            {viewer.truncated ? " · first 64 KiB shown; download for the rest" : ""}
          </p>
        </div>
      );
    case "image":
      return <img data-testid="artifact-image" src={viewer.url} alt={`Thumbnail of ${name}`} className="max-h-64 rounded border border-slate-200 dark:border-slate-700" />;
    case "pdf":
      return (
        <figure className="space-y-1">
          {viewer.url && <img data-testid="artifact-pdf" src={viewer.url} alt={`First page of ${name}`} className="max-h-64 rounded border border-slate-200 dark:border-slate-700" />}
          <figcaption className="text-xs text-slate-600 dark:text-slate-400">
            PDF{viewer.pages !== null ? ` · ${viewer.pages.toLocaleString()} page${viewer.pages === 1 ? "" : "s"}` : ""}
          </figcaption>
        </figure>
      );
    case "archive":
      return (
        <div className="max-h-72 overflow-auto">
          <table data-testid="artifact-entries" className="w-full text-left text-xs">
            <thead>
              <tr><th className="pr-4 font-medium">Entry</th><th className="font-medium">Size</th></tr>
            </thead>
            <tbody>
              {viewer.entries.map((e, i) => (
                <tr key={i}><td className="pr-4 font-mono break-all">{e.name}</td><td>{formatBytes(e.size)}</td></tr>
              ))}
            </tbody>
          </table>
          {viewer.truncated && <p className="mt-1 text-xs text-slate-600 dark:text-slate-400">The first 1,000 entries.</p>}
        </div>
      );
    case "none":
      return <p className="text-xs text-slate-600 dark:text-slate-400">No preview: {viewer.reason}</p>;
  }
}
