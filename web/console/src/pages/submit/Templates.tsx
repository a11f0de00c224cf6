// Save the form as a named template, load or delete one (kept in this browser).

import { useState } from "react";
import type { FormValues } from "./form";
import { loadTemplates, saveTemplates } from "./templates";

export function Templates({ values, onLoad }: { values: FormValues; onLoad(v: FormValues): void }) {
  const [all, setAll] = useState(loadTemplates);
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState("");
  const update = (next: Record<string, FormValues>) => { saveTemplates(next); setAll(next); };
  const names = Object.keys(all).sort();
  const button = "rounded border border-slate-300 px-2 py-1 text-sm hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-indigo-500 disabled:opacity-50 dark:border-slate-700 dark:hover:bg-slate-900";
  return (
    <fieldset className="flex flex-wrap items-end gap-2 rounded border border-slate-200 p-3 dark:border-slate-800">
      <legend className="px-1 text-sm font-medium">Templates</legend>
      <label className="flex flex-col text-xs">Template
        <select value={chosen} onChange={(e) => setChosen(e.target.value)} className="rounded border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-950">
          <option value="">—</option>
          {names.map((n) => <option key={n} value={n}>{n}</option>)}
        </select>
      </label>
      <button type="button" className={button} disabled={!all[chosen]} onClick={() => { const t = all[chosen]; if (t) onLoad(t); }}>Load</button>
      <button type="button" className={button} disabled={!all[chosen]} onClick={() => { const { [chosen]: _, ...rest } = all; update(rest); setChosen(""); }}>Delete</button>
      <label className="ml-auto flex flex-col text-xs">Save as
        <input value={name} onChange={(e) => setName(e.target.value)} className="rounded border border-slate-300 bg-transparent px-2 py-1 text-sm dark:border-slate-700" />
      </label>
      <button type="button" className={button} disabled={!name.trim()} onClick={() => { update({ ...all, [name.trim()]: values }); setChosen(name.trim()); setName(""); }}>Save</button>
    </fieldset>
  );
}
