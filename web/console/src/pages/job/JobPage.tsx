// /jobs/:id — one job: its live state and actions (cancel, rerun), why it waits, its output (a live log, or a
// terminal attached to it when interactive), its artifacts with previews, and its timeline from the event log.
// Everything after the first load comes from the tab's stream of the tenant's events (no polling but explain's).

import { useCallback, useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { ProblemError, type JobEvent, type JobView } from "@xrunner/sdk";
import { fold, TERMINAL } from "../../app/fold";
import { useConsole } from "../../app/session";
import { StateChip } from "../../components/StateChip";
import { Artifacts } from "./Artifacts";
import { AttachTerminal } from "./AttachTerminal";
import { LiveLog } from "./LiveLog";
import { Timeline } from "./Timeline";
import { fromHistory, fromLive, merge, type TimelineEntry } from "./timeline";
import { WhyWaiting } from "./WhyWaiting";

type Load = { kind: "loading" } | { kind: "missing" } | { kind: "failed"; error: string } | { kind: "ready"; view: JobView };

export function JobPage() {
  const { id = "" } = useParams();
  const { client, live } = useConsole();
  const [load, setLoad] = useState<Load>({ kind: "loading" });
  const [entries, setEntries] = useState<TimelineEntry[]>([]);
  const [artifactRevision, setArtifactRevision] = useState(0);

  useEffect(() => {
    let current = true;
    setLoad({ kind: "loading" });
    setEntries([]);
    const early: { event: JobEvent; seq: number }[] = [];
    const onEvent = (event: JobEvent, seq: number) => {
      if (event.job_id !== id) return;
      early.push({ event, seq });
      setEntries((held) => merge(held, [fromLive(event, seq)]));
      setLoad((state) => (state.kind === "ready" ? { kind: "ready", view: fold(state.view, event) } : state));
      if (event.type.startsWith("artifact.")) setArtifactRevision((n) => n + 1);
    };
    const unsubscribe = live.subscribe(onEvent); // first, so nothing falls between the reads and the stream
    Promise.all([client.jobs.get(id), client.jobs.history(id)]).then(
      ([view, history]) => {
        if (!current) return;
        const lastSeq = history.at(-1)?.seq ?? 0;
        // The read model may lag the log: what the history holds past the view's version comes first (a job
        // whose `queued` landed while the page navigated showed `submitted` for good), then what the stream
        // delivered past the history.
        const fromLog = history.filter((h) => h.seq > view.version).map((h) => h.event as unknown as JobEvent);
        const caughtUp = [...fromLog, ...early.filter((e) => e.seq > lastSeq).map((e) => e.event)].reduce(fold, view);
        setLoad({ kind: "ready", view: caughtUp });
        setEntries((held) => merge(held, history.map(fromHistory)));
      },
      (e: unknown) => {
        if (!current) return;
        setLoad(e instanceof ProblemError && e.status === 404 ? { kind: "missing" } : { kind: "failed", error: String(e) });
      },
    );
    return () => {
      current = false;
      unsubscribe();
    };
  }, [client, live, id]);

  if (load.kind === "loading") return <main className="p-6 text-slate-600 dark:text-slate-400">Loading job {id}…</main>;
  if (load.kind === "missing")
    return (
      <main className="space-y-2 p-6">
        <h1 className="text-xl font-semibold">Job not found</h1>
        <p>No job <span className="font-mono">{id}</span> in your tenant. <Link to="/" className="text-blue-700 underline dark:text-blue-400">Back to jobs</Link></p>
      </main>
    );
  if (load.kind === "failed") return <main role="alert" className="p-6 text-red-700">Could not load job {id}: {load.error}</main>;
  return <JobDetail view={load.view} entries={entries} artifactRevision={artifactRevision} />;
}

function JobDetail({ view, entries, artifactRevision }: { view: JobView; entries: TimelineEntry[]; artifactRevision: number }) {
  const workload = view.spec.workload;
  const interactive = Boolean(workload.interactive || workload.tty);
  const ended = TERMINAL.has(view.state);
  const waiting = view.state === "submitted" || view.state === "queued";
  const [attached, setAttached] = useState(false);
  const command = workload.kind === "docker" ? [workload.image, ...(workload.argv ?? [])] : workload.argv;
  return (
    <main className="mx-auto max-w-6xl space-y-6 p-6">
      <header className="space-y-2">
        <div className="flex flex-wrap items-center gap-3">
          <h1 className="text-xl font-semibold">
            {view.spec.name || "Job"} <span className="font-mono text-base text-slate-600 dark:text-slate-400">{view.id}</span>
          </h1>
          <span data-testid="job-state"><StateChip state={view.state} flash /></span>
          {view.cancel_requested && !ended && <span className="text-xs text-amber-700 dark:text-amber-400">cancel requested</span>}
          <Actions view={view} />
        </div>
        <p title={command.join(" ")} className="max-h-16 overflow-auto font-mono text-sm break-all text-slate-700 dark:text-slate-300">{command.join(" ")}</p>
        <Facts view={view} />
      </header>
      {waiting && <WhyWaiting jobId={view.id} revision={entries.length} />}
      {interactive && !ended && !attached && (
        <button type="button" onClick={() => setAttached(true)} className="rounded bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-700 focus-visible:outline-2 focus-visible:outline-indigo-400">
          Attach a terminal
        </button>
      )}
      {attached ? (
        <AttachTerminal jobId={view.id} tty={Boolean(workload.tty)} onDetach={() => setAttached(false)} />
      ) : (
        <LiveLog jobId={view.id} attempt={view.attempt} />
      )}
      <div className="grid gap-6 lg:grid-cols-2">
        <Timeline jobId={view.id} entries={entries} />
        <Artifacts jobId={view.id} revision={artifactRevision} />
      </div>
    </main>
  );
}

function Facts({ view }: { view: JobView }) {
  const facts: [string, string][] = [
    ["attempt", String(view.attempt)],
    ["pool", view.pool || view.spec.resources?.pool || "default"],
    ["worker", view.worker_id ?? "—"],
    ["created", new Date(view.created_at).toLocaleString()],
  ];
  if (view.exit_code != null) facts.push(["exit code", String(view.exit_code)]);
  if (view.reason) facts.push(["reason", view.reason]);
  return (
    <dl className="flex flex-wrap gap-x-6 gap-y-1 text-xs text-slate-600 dark:text-slate-400">
      {facts.map(([name, value]) => (
        <div key={name} className="flex gap-1"><dt>{name}</dt><dd className="font-medium text-slate-800 dark:text-slate-200">{value}</dd></div>
      ))}
    </dl>
  );
}

function Actions({ view }: { view: JobView }) {
  const { client, can } = useConsole();
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const act = useCallback(async (what: () => Promise<void>) => {
    setBusy(true);
    setError("");
    try {
      await what();
    } catch (e) {
      setError(e instanceof ProblemError ? `${e.problem.title}${e.retryAfterS ? ` (retry in ${Math.ceil(e.retryAfterS)} s)` : ""}` : String(e));
    } finally {
      setBusy(false);
    }
  }, []);
  if (!can("jobs:write")) return null;
  const ended = TERMINAL.has(view.state);
  const button = "rounded border px-3 py-1 text-sm disabled:opacity-50 focus-visible:outline-2 focus-visible:outline-indigo-500";
  return (
    <div className="ml-auto flex items-center gap-2">
      {error && <span role="alert" className="text-sm text-red-700 dark:text-red-400">{error}</span>}
      {!ended && (
        <button type="button" disabled={busy || view.cancel_requested} onClick={() => act(async () => void (await client.jobs.cancel(view.id, "cancelled from the console")))}
          className={`${button} border-red-300 text-red-800 hover:bg-red-50 dark:border-red-700 dark:text-red-300 dark:hover:bg-red-950`}>
          Cancel
        </button>
      )}
      <button type="button" disabled={busy} onClick={() => act(async () => navigate(`/jobs/${(await client.jobs.rerun(view.id)).job.id}`))}
        className={`${button} border-slate-300 hover:bg-slate-100 dark:border-slate-600 dark:hover:bg-slate-800`}>
        Rerun
      </button>
    </div>
  );
}
