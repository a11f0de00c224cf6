// The submit form's values and how they become a JobSpec; which form field a 400's field path points at.

import type { JobSpec } from "@xrunner/sdk";

export interface FormValues {
  kind: "process" | "docker";
  name: string;
  command: string; // shell-like words: quotes group, no expansion
  image: string;
  interactive: boolean;
  tty: boolean;
  keepContainer: boolean;
  network: boolean;
  cpuMillis: string;
  memoryMib: string;
  gpu: string;
  pool: string;
  env: string; // KEY=VALUE per line
  labels: string; // key=value per line
  timeoutS: string;
  maxAttempts: string;
}

export const EMPTY: FormValues = {
  kind: "process", name: "", command: "", image: "", interactive: false, tty: false, keepContainer: false,
  network: false, cpuMillis: "", memoryMib: "", gpu: "", pool: "", env: "", labels: "", timeoutS: "", maxAttempts: "",
};

export type FieldName = keyof FormValues | "form";

/** The words of a command line: whitespace separates, single or double quotes group, a backslash escapes. */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else cur = (cur ?? "") + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      cur = cur ?? "";
    } else if (c === "\\" && i + 1 < line.length) {
      cur = (cur ?? "") + line[++i];
    } else if (/\s/.test(c)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else cur = (cur ?? "") + c;
  }
  if (cur !== null) out.push(cur);
  return out;
}

/** `KEY=VALUE` lines as an object; blank lines are skipped. A line without `=` is an error naming it. */
export function pairs(text: string): Record<string, string> | { error: string } {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) return { error: `"${line}" is not key=value` };
    out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

function num(text: string): number | undefined {
  return text.trim() === "" ? undefined : Number(text);
}

/** The spec the form describes, or the first field whose text cannot be turned into one. */
export function toSpec(v: FormValues): { spec: JobSpec } | { field: FieldName; error: string } {
  const env = pairs(v.env);
  if ("error" in env) return { field: "env", error: String(env.error) };
  const labels = pairs(v.labels);
  if ("error" in labels) return { field: "labels", error: String(labels.error) };
  const argv = words(v.command);
  const common = { interactive: v.interactive, tty: v.tty, network: v.network, env };
  const workload = v.kind === "docker"
    ? { kind: "docker" as const, image: v.image.trim(), argv, keep_container: v.keepContainer, ...common }
    : { kind: "process" as const, argv: argv as [string, ...string[]], ...common };
  const resources = { cpu_millis: num(v.cpuMillis), memory_mib: num(v.memoryMib), gpu: num(v.gpu), pool: v.pool.trim() || undefined };
  const spec = {
    workload,
    labels,
    ...(v.name.trim() ? { name: v.name.trim() } : {}),
    ...(Object.values(resources).some((x) => x !== undefined) ? { resources: strip(resources) } : {}),
    ...(num(v.timeoutS) !== undefined ? { timeout_s: num(v.timeoutS) } : {}),
    ...(num(v.maxAttempts) !== undefined ? { retry: { max_attempts: num(v.maxAttempts) } } : {}),
  };
  return { spec: spec as JobSpec };
}

function strip<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

const PATHS: [RegExp, FieldName][] = [
  [/^workload\.argv/, "command"], [/^workload\.image/, "image"], [/^workload\.env/, "env"],
  [/^workload\.interactive/, "interactive"], [/^workload\.tty/, "tty"], [/^workload\.keep_container/, "keepContainer"],
  [/^workload\.network/, "network"], [/^workload/, "kind"],
  [/^resources\.cpu_millis/, "cpuMillis"], [/^resources\.memory_mib/, "memoryMib"], [/^resources\.gpu/, "gpu"],
  [/^resources\.pool/, "pool"], [/^labels/, "labels"], [/^timeout_s/, "timeoutS"], [/^retry/, "maxAttempts"],
  [/^name/, "name"],
];

/** The form field a problem's `field` (a JSON path such as `$.workload.argv[0]`) points at. */
export function fieldOf(path: string | null): FieldName {
  const p = (path ?? "").replace(/^\$\.?/, "");
  return PATHS.find(([re]) => re.test(p))?.[1] ?? "form";
}
