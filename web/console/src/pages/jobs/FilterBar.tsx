// The jobs list's filters: states (checkboxes), one label (key=value) and a time window; each change goes to the URL.

import { useState, type FormEvent } from "react";
import { PERIODS, STATES, validLabel, type Filters, type Period } from "./filters";

interface Props {
  filters: Filters;
  onChange(params: URLSearchParams): void;
}

export function FilterBar({ filters, onChange }: Props) {
  const [label, setLabel] = useState(filters.label);
  const emit = (next: { states?: string[]; label?: string; period?: Period }) => {
    const p = new URLSearchParams();
    const states = next.states ?? filters.states;
    const l = (next.label ?? filters.label).trim();
    const period = next.period ?? filters.period;
    if (states.length) p.set("state", states.join(","));
    if (l) p.set("label", l);
    if (period) p.set("since", period);
    onChange(p);
  };
  const toggle = (state: string) =>
    emit({ states: filters.states.includes(state as never) ? filters.states.filter((s) => s !== state) : [...filters.states, state] });
  const submitLabel = (e: FormEvent) => { e.preventDefault(); emit({ label }); };
  const bad = label.trim() !== "" && !validLabel(label);
  return (
    <div className="flex flex-wrap items-end gap-4 text-sm">
      <fieldset className="flex flex-wrap gap-x-2 gap-y-1">
        <legend className="mb-1 text-xs font-medium text-slate-600 dark:text-slate-400">State</legend>
        {STATES.map((s) => (
          <label key={s} className="flex items-center gap-1">
            <input type="checkbox" checked={filters.states.includes(s)} onChange={() => toggle(s)} className="accent-indigo-600" />
            {s.replace("_", " ")}
          </label>
        ))}
      </fieldset>
      <form onSubmit={submitLabel} className="flex flex-col">
        <label htmlFor="label-filter" className="mb-1 text-xs font-medium text-slate-600 dark:text-slate-400">Label (key=value)</label>
        <input id="label-filter" value={label} onChange={(e) => setLabel(e.target.value)} onBlur={() => label !== filters.label && !bad && emit({ label })}
          aria-invalid={bad} aria-describedby={bad ? "label-filter-error" : undefined}
          className="w-44 rounded border border-slate-300 bg-transparent px-2 py-1 dark:border-slate-700" placeholder="team=ml" />
        {bad && <span id="label-filter-error" className="text-xs text-red-700 dark:text-red-300">Use key=value</span>}
      </form>
      <div className="flex flex-col">
        <label htmlFor="period-filter" className="mb-1 text-xs font-medium text-slate-600 dark:text-slate-400">Created</label>
        <select id="period-filter" value={filters.period} onChange={(e) => emit({ period: e.target.value as Period })}
          className="rounded border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-950">
          {Object.entries(PERIODS).map(([value, text]) => <option key={value} value={value}>{text}</option>)}
        </select>
      </div>
    </div>
  );
}
