// The job's events, oldest first: time, what happened, a one-line summary, and the whole payload on demand.

import { label, payloadText, sinceStart, summary, tone, type TimelineEntry, type Tone } from "./timeline";

const DOT: Record<Tone, string> = {
  ok: "bg-emerald-500",
  bad: "bg-red-500",
  warn: "bg-amber-500",
  info: "bg-slate-400",
};

export function Timeline({ entries }: { entries: readonly TimelineEntry[] }) {
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
            </details>
          </li>
        ))}
      </ol>
    </section>
  );
}
