// A job's state as a coloured chip; when the state changes it flashes briefly (CSS only, so it never holds back
// the next update; the flash is off for users who ask for reduced motion).

import type { JobState } from "@xrunner/sdk";

const COLOURS: Record<JobState, string> = {
  submitted: "bg-slate-100 text-slate-800 dark:bg-slate-800 dark:text-slate-200",
  queued: "bg-amber-100 text-amber-900 dark:bg-amber-900/50 dark:text-amber-100",
  dispatched: "bg-sky-100 text-sky-900 dark:bg-sky-900/50 dark:text-sky-100",
  running: "bg-blue-100 text-blue-900 dark:bg-blue-900/60 dark:text-blue-100",
  succeeded: "bg-emerald-100 text-emerald-900 dark:bg-emerald-900/50 dark:text-emerald-100",
  failed: "bg-red-100 text-red-900 dark:bg-red-900/50 dark:text-red-100",
  timed_out: "bg-orange-100 text-orange-900 dark:bg-orange-900/50 dark:text-orange-100",
  cancelled: "bg-zinc-200 text-zinc-800 dark:bg-zinc-700 dark:text-zinc-100",
  expired: "bg-zinc-200 text-zinc-800 dark:bg-zinc-700 dark:text-zinc-100",
  rejected: "bg-rose-100 text-rose-900 dark:bg-rose-900/50 dark:text-rose-100",
};

export function StateChip({ state, flash = false }: { state: JobState; flash?: boolean }) {
  return (
    <span
      key={flash ? state : undefined}
      data-state={state}
      className={`inline-block rounded-full px-2 py-0.5 text-xs font-medium transition-colors duration-300 ${COLOURS[state]} ${flash ? "xr-flash" : ""}`}
    >
      {state.replace("_", " ")}
    </span>
  );
}
