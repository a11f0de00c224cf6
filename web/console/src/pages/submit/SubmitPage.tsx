// Submit a job: process or docker workloads, saved templates, a 400's message at the field it names, and
// backpressure cues (submit off, with the reason and a Retry-After countdown, while the tenant is at a limit).

import { ProblemError, type JobView } from "@xrunner/sdk";
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { fold } from "../../app/fold";
import { useConsole } from "../../app/session";
import { StateChip } from "../../components/StateChip";
import { useBackpressure } from "./backpressure";
import { Check, Field } from "./Fields";
import { EMPTY, fieldOf, toSpec, type FieldName, type FormValues } from "./form";
import { Templates } from "./Templates";

type Errors = Partial<Record<FieldName, string>>;

export function SubmitPage() {
  const { client, live } = useConsole();
  const [values, setValues] = useState<FormValues>(EMPTY);
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const [recent, setRecent] = useState<JobView[]>([]);
  const pressure = useBackpressure();
  const set = <K extends keyof FormValues>(key: K) => (value: FormValues[K]) => setValues((v) => ({ ...v, [key]: value }));

  useEffect(() => live.subscribe((event) => {
    if (!("job_id" in event)) return;
    setRecent((jobs) => jobs.some((j) => j.id === event.job_id) ? jobs.map((j) => (j.id === event.job_id ? fold(j, event) : j)) : jobs);
  }), [live]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const built = toSpec(values);
    if ("error" in built) return showErrors({ [built.field]: built.error });
    setBusy(true);
    try {
      const accepted = await client.jobs.submit(built.spec);
      setErrors({});
      const job = live.eventsOf(accepted.job.id).reduce(fold, accepted.job); // events may beat the answer
      setRecent((jobs) => [job, ...jobs.filter((j) => j.id !== job.id)].slice(0, 20));
    } catch (err) {
      if (err instanceof ProblemError && err.status === 429) pressure.throttled(err.retryAfterS ?? 1, err.detail ?? err.problem.title);
      else if (err instanceof ProblemError && err.status === 400) showErrors({ [fieldOf(err.field)]: err.detail ?? err.problem.title });
      else showErrors({ form: err instanceof ProblemError ? `${err.problem.title}${err.detail ? `: ${err.detail}` : ""}` : String(err) });
    } finally {
      setBusy(false);
    }
  };
  const showErrors = (next: Errors) => {
    setErrors(next);
    const first = Object.keys(next)[0];
    if (first && first !== "form") requestAnimationFrame(() => document.getElementById(`f-${first}`)?.focus());
  };

  const disabled = busy || pressure.reason !== null;
  const docker = values.kind === "docker";
  return (
    <main className="grid gap-6 p-6 lg:grid-cols-[minmax(0,42rem)_1fr]">
      <form onSubmit={submit} noValidate className="flex flex-col gap-4" aria-labelledby="submit-title">
        <h1 id="submit-title" className="text-xl font-semibold">Submit a job</h1>
        <Templates values={values} onLoad={(v) => { setValues(v); setErrors({}); }} />
        <fieldset className="flex gap-4">
          <legend className="mb-1 text-sm font-medium">Workload</legend>
          {(["process", "docker"] as const).map((kind) => (
            <label key={kind} className="flex items-center gap-1 text-sm">
              <input type="radio" name="kind" id={kind === "process" ? "f-kind" : undefined} value={kind} checked={values.kind === kind}
                onChange={() => set("kind")(kind)} className="accent-indigo-600" />
              {kind === "process" ? "Process" : "Docker container"}
            </label>
          ))}
        </fieldset>
        {errors.kind && <p data-testid="error-f-kind" className="text-xs text-red-700 dark:text-red-300">{errors.kind}</p>}
        {docker && (
          <Field id="f-image" label="Image" error={errors.image}>
            {(p) => <input {...p} value={values.image} onChange={(e) => set("image")(e.target.value)} placeholder="busybox:latest" />}
          </Field>
        )}
        <Field id="f-command" label="Command" error={errors.command} hint="Words as in a shell: quotes group, nothing is expanded.">
          {(p) => <input {...p} value={values.command} onChange={(e) => set("command")(e.target.value)} placeholder="echo hello" className={`${p.className} font-mono`} />}
        </Field>
        <Field id="f-name" label="Name (optional)" error={errors.name}>
          {(p) => <input {...p} value={values.name} onChange={(e) => set("name")(e.target.value)} />}
        </Field>
        <div className="flex flex-wrap gap-x-6 gap-y-2">
          <Check id="f-interactive" label="Interactive (attach)" checked={values.interactive} onChange={set("interactive")} error={errors.interactive} />
          <Check id="f-tty" label="TTY" checked={values.tty} onChange={set("tty")} error={errors.tty} />
          <Check id="f-network" label="Network" checked={values.network} onChange={set("network")} error={errors.network} />
          {docker && <Check id="f-keepContainer" label="Keep container" checked={values.keepContainer} onChange={set("keepContainer")} error={errors.keepContainer} />}
        </div>
        <fieldset className="grid grid-cols-2 gap-3 sm:grid-cols-4">
          <legend className="mb-1 text-sm font-medium">Resources</legend>
          <Field id="f-cpuMillis" label="CPU (millicores)" error={errors.cpuMillis}>{(p) => <input {...p} inputMode="numeric" value={values.cpuMillis} onChange={(e) => set("cpuMillis")(e.target.value)} />}</Field>
          <Field id="f-memoryMib" label="Memory (MiB)" error={errors.memoryMib}>{(p) => <input {...p} inputMode="numeric" value={values.memoryMib} onChange={(e) => set("memoryMib")(e.target.value)} />}</Field>
          <Field id="f-gpu" label="GPUs" error={errors.gpu}>{(p) => <input {...p} inputMode="numeric" value={values.gpu} onChange={(e) => set("gpu")(e.target.value)} />}</Field>
          <Field id="f-pool" label="Pool" error={errors.pool}>{(p) => <input {...p} value={values.pool} onChange={(e) => set("pool")(e.target.value)} />}</Field>
        </fieldset>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field id="f-env" label="Environment (KEY=VALUE per line)" error={errors.env}>{(p) => <textarea {...p} rows={3} value={values.env} onChange={(e) => set("env")(e.target.value)} className={`${p.className} font-mono`} />}</Field>
          <Field id="f-labels" label="Labels (key=value per line)" error={errors.labels}>{(p) => <textarea {...p} rows={3} value={values.labels} onChange={(e) => set("labels")(e.target.value)} className={`${p.className} font-mono`} />}</Field>
        </div>
        <div className="grid grid-cols-2 gap-3">
          <Field id="f-timeoutS" label="Timeout (s)" error={errors.timeoutS}>{(p) => <input {...p} inputMode="decimal" value={values.timeoutS} onChange={(e) => set("timeoutS")(e.target.value)} />}</Field>
          <Field id="f-maxAttempts" label="Attempts (1 = no retry)" error={errors.maxAttempts}>{(p) => <input {...p} inputMode="numeric" value={values.maxAttempts} onChange={(e) => set("maxAttempts")(e.target.value)} />}</Field>
        </div>
        {errors.form && <p role="alert" className="rounded bg-red-50 p-2 text-sm text-red-800 dark:bg-red-950 dark:text-red-200">{errors.form}</p>}
        <div className="flex items-center gap-3">
          <button type="submit" disabled={disabled} aria-describedby={pressure.reason ? "submit-reason" : undefined}
            className="rounded bg-indigo-700 px-4 py-1.5 font-medium text-white hover:bg-indigo-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-500 disabled:cursor-not-allowed disabled:bg-slate-400 dark:disabled:bg-slate-700">
            {busy ? "Submitting…" : "Submit"}
          </button>
          {pressure.reason && <p id="submit-reason" role="status" data-testid="submit-reason" className="text-sm text-amber-800 dark:text-amber-200">{pressure.reason}</p>}
        </div>
      </form>
      <Recent jobs={recent} />
    </main>
  );
}

function Recent({ jobs }: { jobs: JobView[] }) {
  return (
    <section aria-labelledby="recent-title" className="flex flex-col gap-2">
      <h2 id="recent-title" className="text-lg font-semibold">Submitted from this page</h2>
      {jobs.length === 0 && <p className="text-sm text-slate-600 dark:text-slate-400">Nothing yet.</p>}
      <ul className="flex flex-col gap-1" aria-live="polite">
        {jobs.map((job) => (
          <li key={job.id} data-testid="submitted-job" data-job-id={job.id} className="flex items-center gap-3 text-sm">
            <StateChip state={job.state} flash />
            <Link to={`/jobs/${job.id}`} className="font-mono text-xs text-indigo-700 hover:underline dark:text-indigo-300">{job.id}</Link>
          </li>
        ))}
      </ul>
    </section>
  );
}
