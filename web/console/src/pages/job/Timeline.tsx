// The job's events, oldest first: time, what happened, a one-line summary, and the whole payload on demand, with
// the job as it was right after that event (GET /v1/jobs/{id}?as_of=SEQ, the read model's own fold of the prefix).

import { useState } from "react";
import type { JobView } from "@xrunner/sdk";
import { useConsole } from "../../app/session";
import { StateChip } from "../../components/StateChip";
import { label, payloadText, sinceStart, summary, tone, type TimelineEntry, type Tone } from "./timeline";

const DOT: Record<Tone, string> = {
  ok: "bg-emerald-500",
  bad: "bg-red-500",
  warn: "bg-amber-500",
  info: "bg-slate-400",
};

export function Timeline({ jobId, entries }: { jobId: string; entries: readonly TimelineEntry[] }) {
  const first = entries[0]?.at ?? "";
  return (
    <section aria-labelledby="timeline-title" className="space-y-2">
      <h2 id="timeline-title" className="text-lg font-semibold">Timeline</h2>
      <ol data-testid="timeline" className="space-y-1 border-l border-slate-300 pl-4 dark:border-slate-700">
        {entries.map((entry) => (
          <li key={entry.seq} data-type={entry.type} className="relative">
            <span aria-hidden className={`absolute top-2 -left-[21px] h-2.5 w-2.5 rounded-full ${DOT[tone(entry.type)]}`} />
            <details>
              <summary className="cursor-pointer text-sm">
                <time dateTime={entry.at} title={entry.at} className="mr-2 font-mono text-xs text-slate-500 dark:text-slate-400">
                  {new Date(entry.at).toLocaleTimeString()} <span className="text-slate-600 dark:text-slate-400">{sinceStart(first, entry.at)}</span>
                </time>
                <span className="font-medium">{label(entry.type)}</span>
                <span className="ml-2 text-slate-600 dark:text-slate-300">{summary(entry)}</span>
              </summary>
              <pre className="mt-1 overflow-auto rounded bg-slate-100 p-2 text-xs dark:bg-slate-800">
                {`#${entry.seq} ${entry.type}\n${payloadText(entry)}`}
              </pre>
              <AsOf jobId={jobId} seq={entry.seq} />
            </details>
          </li>
        ))}
      </ol>
    </section>
  );
}

type Then = { kind: "idle" } | { kind: "loading" } | { kind: "failed"; error: string } | { kind: "ready"; view: JobView };

/** The job right after event `seq`, loaded on request. */
function AsOf({ jobId, seq }: { jobId: string; seq: number }) {
  const { client } = useConsole();
  const [then, setThen] = useState<Then>({ kind: "idle" });
  const load = () => {
    setThen({ kind: "loading" });
    client.jobs.get(jobId, { asOf: seq }).then(
      (view) => setThen({ kind: "ready", view }),
      (e: unknown) => setThen({ kind: "failed", error: String(e) }),
    );
  };
  if (then.kind === "ready") {
    const v = then.view;
    return (
      <p data-testid={`as-of-${seq}`} className="mt-1 flex flex-wrap items-center gap-2 text-xs text-slate-700 dark:text-slate-300">
        <span>Right after #{seq}:</span>
        <StateChip state={v.state} />
        <span>attempt {v.attempt}</span>
        {v.worker_id && <span>on {v.worker_id}</span>}
        {v.exit_code !== null && v.exit_code !== undefined && <span>exit {v.exit_code}</span>}
        {v.artifacts > 0 && <span>{v.artifacts} artifact{v.artifacts === 1 ? "" : "s"}</span>}
      </p>
    );
  }
  return (
    <p className="mt-1 text-xs">
      <button type="button" onClick={load} disabled={then.kind === "loading"}
              className="text-blue-700 underline disabled:opacity-50 dark:text-blue-400">
        {then.kind === "loading" ? "Loading…" : "The job as of this event"}
      </button>
      {then.kind === "failed" && <span role="alert" className="ml-2 text-red-700 dark:text-red-400">{then.error}</span>}
    </p>
  );
}
