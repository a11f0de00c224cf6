// Saved submit templates: the form's values under a name, in this browser's localStorage.

import { EMPTY, type FormValues } from "./form";

const KEY = "xrunner.templates";

export function loadTemplates(): Record<string, FormValues> {
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Record<string, Partial<FormValues>>;
    return Object.fromEntries(Object.entries(raw).map(([name, v]) => [name, { ...EMPTY, ...v }]));
  } catch {
    return {};
  }
}

export function saveTemplates(all: Record<string, FormValues>): void {
  localStorage.setItem(KEY, JSON.stringify(all));
}
