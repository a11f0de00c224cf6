// The submit form's labelled inputs; each shows its error (from the form or a 400 naming it) under itself.

import type { ReactNode } from "react";

const INPUT = "w-full rounded border border-slate-300 bg-white px-2 py-1 text-sm aria-[invalid=true]:border-red-600 dark:border-slate-700 dark:bg-slate-950";

interface FieldProps {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  children: (props: { id: string; "aria-invalid": boolean; "aria-describedby"?: string; className: string }) => ReactNode;
}

export function Field({ id, label, error, hint, children }: FieldProps) {
  const described = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium">{label}</label>
      {children({ id, "aria-invalid": Boolean(error), ...(described ? { "aria-describedby": described } : {}), className: INPUT })}
      {error ? <p id={`${id}-error`} data-testid={`error-${id}`} className="text-xs text-red-700 dark:text-red-300">{error}</p>
        : hint ? <p id={`${id}-hint`} className="text-xs text-slate-600 dark:text-slate-400">{hint}</p> : null}
    </div>
  );
}

export function Check({ id, label, checked, onChange, error }: {
  id: string; label: string; checked: boolean; onChange(v: boolean): void; error?: string | undefined;
}) {
  return (
    <div>
      <label htmlFor={id} className="flex items-center gap-2 text-sm">
        <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} className="accent-indigo-600" />
        {label}
      </label>
      {error && <p data-testid={`error-${id}`} className="text-xs text-red-700 dark:text-red-300">{error}</p>}
    </div>
  );
}
