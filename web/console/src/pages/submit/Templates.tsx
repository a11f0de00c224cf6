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
      <div className="flex flex-col">
        <label htmlFor="template-pick" className="text-xs">Template</label>
        <select id="template-pick" value={chosen} onChange={(e) => setChosen(e.target.value)} className="rounded border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-950">
          <option value="">—</option>
          {names.map((n) => <option key={n} value={n}>{n}</option>)}
        </select>
      </div>
      <button type="button" className={button} disabled={!all[chosen]} onClick={() => { const t = all[chosen]; if (t) onLoad(t); }}>Load</button>
      <button type="button" className={button} disabled={!all[chosen]} onClick={() => { const { [chosen]: _, ...rest } = all; update(rest); setChosen(""); }}>Delete</button>
      <div className="ml-auto flex flex-col">
        <label htmlFor="template-name" className="text-xs">Save as</label>
        <input id="template-name" value={name} onChange={(e) => setName(e.target.value)} className="rounded border border-slate-300 bg-transparent px-2 py-1 text-sm dark:border-slate-700" />
      </div>
      <button type="button" className={button} disabled={!name.trim()} onClick={() => { update({ ...all, [name.trim()]: values }); setChosen(name.trim()); setName(""); }}>Save</button>
    </fieldset>
  );
}
