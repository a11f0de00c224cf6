// /admin (admin scope) — tenants' weights and limits: every tenant the scheduler knows (GET /v1/stats shows an
// admin all of them) or one opened by name, each editable through PUT /v1/tenants/{tenant}; the API's refusal of a
// value is shown at its field.

import { useCallback, useEffect, useId, useState, type FormEvent } from "react";
import { ProblemError, type TenantLimits } from "@xrunner/sdk";
import { useConsole } from "../../app/session";
import { FIELDS, fieldOf, parse, TENANT_NAME, valuesOf, type Field, type FormValues } from "./tenantForm";

export function AdminPage() {
  const { can } = useConsole();
  if (!can("admin"))
    return (
      <main className="p-6">
        <h1 className="text-xl font-semibold">Not found</h1>
        <p className="text-sm text-slate-600 dark:text-slate-400">This page needs the admin scope.</p>
      </main>
    );
  return <Tenants />;
}

function Tenants() {
  const { client } = useConsole();
  const [names, setNames] = useState<string[] | null>(null);
  const [error, setError] = useState("");
  const [wanted, setWanted] = useState("");
  useEffect(() => {
    client.stats().then(
      (stats) => setNames((opened) => [...new Set([...(opened ?? []), ...stats.tenants.map((t) => t.tenant).sort()])]),
      (e: unknown) => setError(String(e)),
    );
  }, [client]);
  const open = (event: FormEvent) => {
    event.preventDefault();
    const name = wanted.trim();
    if (!TENANT_NAME.test(name)) return setError(`"${name}" is not a tenant name (a-z, 0-9, _ and -)`);
    setError("");
    setNames((held) => (held?.includes(name) ? held : [name, ...(held ?? [])]));
    setWanted("");
  };
  return (
    <main className="mx-auto max-w-6xl space-y-6 p-6">
      <h1 className="text-xl font-semibold">Tenants</h1>
      <form onSubmit={open} className="flex items-end gap-2">
        <label className="flex flex-col text-sm">
          Open or add a tenant
          <input value={wanted} onChange={(e) => setWanted(e.target.value)} placeholder="tenant name" className="mt-1 rounded border border-slate-300 px-2 py-1 font-mono dark:border-slate-600 dark:bg-slate-900" />
        </label>
        <button type="submit" className="rounded border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100 dark:border-slate-600 dark:hover:bg-slate-800">Open</button>
      </form>
      {error && <p role="alert" className="text-sm text-red-700 dark:text-red-400">{error}</p>}
      {names === null && !error && <p className="text-sm text-slate-600 dark:text-slate-400">Loading…</p>}
      {names?.length === 0 && <p className="text-sm text-slate-600 dark:text-slate-400">The scheduler knows no tenant yet; open one by name.</p>}
      <ul className="space-y-4">{names?.map((name) => <TenantForm key={name} tenant={name} />)}</ul>
    </main>
  );
}

type Saved = { kind: "idle" } | { kind: "saving" } | { kind: "saved" } | { kind: "failed"; message: string };

function TenantForm({ tenant }: { tenant: string }) {
  const { client } = useConsole();
  const [limits, setLimits] = useState<TenantLimits | null>(null);
  const [values, setValues] = useState<FormValues | null>(null);
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [saved, setSaved] = useState<Saved>({ kind: "idle" });
  const id = useId();
  useEffect(() => {
    client.tenants.get(tenant).then((found) => {
      setLimits(found);
      setValues(valuesOf(found));
    }, (e: unknown) => setSaved({ kind: "failed", message: String(e) }));
  }, [client, tenant]);
  const save = useCallback(async (event: FormEvent) => {
    event.preventDefault();
    if (!values) return;
    const parsed = parse(values);
    if (!parsed.ok) return setErrors(parsed.errors);
    setErrors({});
    setSaved({ kind: "saving" });
    try {
      const now = await client.tenants.configure(tenant, parsed.body);
      setLimits(now);
      setValues(valuesOf(now));
      setSaved({ kind: "saved" });
    } catch (e) {
      const field = e instanceof ProblemError ? fieldOf(e.field) : null;
      if (field && e instanceof ProblemError) setErrors({ [field]: e.problem.detail || e.problem.title });
      setSaved({ kind: "failed", message: e instanceof ProblemError ? e.problem.title : String(e) });
    }
  }, [client, tenant, values]);
  return (
    <li data-testid="tenant" data-tenant={tenant} className="rounded border border-slate-200 p-4 dark:border-slate-700">
      <form onSubmit={save} aria-labelledby={`${id}-name`} className="space-y-3">
        <div className="flex items-baseline gap-3">
          <h2 id={`${id}-name`} className="font-mono text-lg font-semibold">{tenant}</h2>
          {limits && <span className="text-xs text-slate-600 dark:text-slate-400">{limits.configured ? "configured" : "scheduler defaults"}</span>}
        </div>
        {values && (
          <div className="grid gap-3 sm:grid-cols-3 lg:grid-cols-5">
            {FIELDS.map((spec) => (
              <label key={spec.field} className="flex flex-col text-sm">
                {spec.label}
                <input inputMode="decimal" name={spec.field} value={values[spec.field]} aria-invalid={Boolean(errors[spec.field])}
                  aria-describedby={`${id}-${spec.field}-hint`}
                  onChange={(e) => setValues({ ...values, [spec.field]: e.target.value })}
                  className="mt-1 rounded border border-slate-300 px-2 py-1 tabular-nums aria-[invalid=true]:border-red-500 dark:border-slate-600 dark:bg-slate-900" />
                <span id={`${id}-${spec.field}-hint`} className={`text-xs ${errors[spec.field] ? "text-red-700 dark:text-red-400" : "text-slate-600 dark:text-slate-400"}`}>
                  {errors[spec.field] ?? spec.hint}
                </span>
              </label>
            ))}
          </div>
        )}
        <div className="flex items-center gap-3">
          <button type="submit" disabled={!values || saved.kind === "saving"} className="rounded bg-indigo-600 px-3 py-1 text-sm font-medium text-white hover:bg-indigo-700 disabled:opacity-50">Save</button>
          <span aria-live="polite" className="text-sm">
            {saved.kind === "saving" && "Saving…"}
            {saved.kind === "saved" && "Saved: the scheduler applies it from the log."}
            {saved.kind === "failed" && <span className="text-red-700 dark:text-red-400">{saved.message}</span>}
          </span>
        </div>
      </form>
    </li>
  );
}
