// The tenant's jobs: a live list (states move as events arrive over the tab's one SSE stream, never by polling),
// filtered by state, label and time, paged by cursor and virtualised so 10,000 rows scroll smoothly.

import type { JobView } from "@xrunner/sdk";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { Link, useSearchParams } from "react-router";
import { useConsole } from "../../app/session";
import { StateChip } from "../../components/StateChip";
import { FilterBar } from "./FilterBar";
import { readFilters, toQuery } from "./filters";
import { JobListStore } from "./store";

const PAGE = 200;
const ROW_PX = 40;
const FLASH_MS = 700;
const COLUMNS = "grid grid-cols-[minmax(9rem,14rem)_7rem_minmax(10rem,1fr)_10rem_5rem] items-center gap-3 px-4";
const time = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function JobsPage() {
  const { client, live } = useConsole();
  const [params, setParams] = useSearchParams();
  const key = params.toString();
  const filters = useMemo(() => readFilters(new URLSearchParams(key), Date.now()), [key]);
  const store = useMemo(() => new JobListStore(filters), [filters]);
  const snap = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const [paging, setPaging] = useState<{ cursor: string | null; loading: boolean; error: string | null }>(
    { cursor: null, loading: true, error: null });

  useEffect(() => live.subscribe((event) => store.apply(event)), [live, store]);
  useEffect(() => {
    // Jobs that had events but no row (not yet in the read model when the list was read): fetched once each,
    // at most 10 every half second, and placed by creation time.
    const tick = window.setInterval(() => {
      for (const id of store.take(10))
        client.jobs.get(id).then((job) => store.place(job, live.eventsOf(id)), () => undefined);
    }, 500);
    return () => window.clearInterval(tick);
  }, [client, live, store]);

  const load = useCallback(async (cursor: string | null) => {
    setPaging((p) => ({ ...p, loading: true, error: null }));
    try {
      const page = await client.jobs.list({ ...toQuery(filters, PAGE), ...(cursor ? { cursor } : {}) });
      store.addPage(page.jobs);
      setPaging({ cursor: page.next_cursor ?? null, loading: false, error: null });
    } catch (e) {
      setPaging((p) => ({ ...p, loading: false, error: String(e) }));
    }
  }, [client, filters, store]);
  useEffect(() => { void load(null); }, [load]);

  const more = paging.cursor && !paging.loading ? () => void load(paging.cursor) : null;
  return (
    <main className="flex min-h-0 flex-1 flex-col">
      <div className="flex flex-wrap items-end gap-4 px-4 pb-2 pt-4">
        <h1 className="text-xl font-semibold">Jobs</h1>
        <FilterBar filters={filters} onChange={(next) => setParams(next, { replace: true })} />
      </div>
      {paging.error && <p role="alert" className="px-4 text-sm text-red-700 dark:text-red-300">Could not load jobs: {paging.error}</p>}
      <JobTable ids={snap.ids} jobs={snap.jobs} changedAt={snap.changedAt} onNearEnd={more} />
      <footer className="flex items-center gap-3 border-t border-slate-200 px-4 py-2 text-sm dark:border-slate-800" aria-live="polite">
        <span data-testid="job-count">{snap.ids.length} jobs{paging.cursor ? " (more available)" : ""}</span>
        {paging.loading && <span>Loading…</span>}
        {more && <button type="button" onClick={more} className="rounded border border-slate-300 px-2 py-0.5 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-indigo-500 dark:border-slate-700 dark:hover:bg-slate-900">Load more</button>}
      </footer>
    </main>
  );
}

interface TableProps {
  ids: readonly string[];
  jobs: ReadonlyMap<string, JobView>;
  changedAt: ReadonlyMap<string, number>;
  onNearEnd: (() => void) | null;
}

function JobTable({ ids, jobs, changedAt, onNearEnd }: TableProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({ count: ids.length, getScrollElement: () => scroller.current, estimateSize: () => ROW_PX, overscan: 12 });
  const items = rows.getVirtualItems();
  const last = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (onNearEnd && last >= ids.length - 30) onNearEnd();
  }, [last, ids.length, onNearEnd]);
  const now = performance.now();
  return (
    <div role="table" aria-label="Jobs" aria-rowcount={ids.length + 1} className="flex min-h-0 flex-1 flex-col">
      <div role="rowgroup">
        <div role="row" aria-rowindex={1} className={`${COLUMNS} border-b border-slate-200 py-2 text-xs font-semibold uppercase tracking-wide text-slate-600 dark:border-slate-800 dark:text-slate-400`}>
          <span role="columnheader">Job</span>
          <span role="columnheader">State</span>
          <span role="columnheader">Command</span>
          <span role="columnheader">Created</span>
          <span role="columnheader">Exit</span>
        </div>
      </div>
      <div ref={scroller} role="rowgroup" data-testid="job-rows" className="min-h-0 flex-1 overflow-auto" style={{ contain: "strict" }}>
        <div style={{ height: rows.getTotalSize(), position: "relative" }}>
          {items.map((item) => {
            const id = ids[item.index] ?? "";
            const job = jobs.get(id);
            if (!job) return null;
            const flash = now - (changedAt.get(id) ?? -Infinity) < FLASH_MS;
            return (
              <div key={id} role="row" aria-rowindex={item.index + 2} data-job-id={id}
                className={`${COLUMNS} absolute left-0 top-0 w-full border-b border-slate-100 text-sm hover:bg-slate-50 dark:border-slate-900 dark:hover:bg-slate-900`}
                style={{ height: ROW_PX, transform: `translateY(${item.start}px)` }}>
                <span role="cell" className="truncate font-mono text-xs">
                  <Link to={`/jobs/${id}`} className="text-indigo-700 underline-offset-2 hover:underline focus-visible:outline-2 focus-visible:outline-indigo-500 dark:text-indigo-300">{job.spec.name || id}</Link>
                </span>
                <span role="cell"><StateChip state={job.state} flash={flash} /></span>
                <span role="cell" className="truncate font-mono text-xs text-slate-700 dark:text-slate-300">{command(job)}</span>
                <span role="cell" className="text-xs text-slate-600 dark:text-slate-400">{time.format(new Date(job.created_at))}</span>
                <span role="cell" className="text-xs">{job.exit_code ?? ""}</span>
              </div>
            );
          })}
        </div>
        {ids.length === 0 && <p className="p-4 text-sm text-slate-600 dark:text-slate-400">No jobs match.</p>}
      </div>
    </div>
  );
}

function command(job: JobView): string {
  const w = job.spec.workload;
  return w.kind === "docker" ? `${w.image} ${(w.argv ?? []).join(" ")}` : w.argv.join(" ");
}
