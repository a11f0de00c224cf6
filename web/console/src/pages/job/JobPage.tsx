// Placeholder owned by the jobview helper: replaced by the real Job page.

import { useParams } from "react-router";
import { useConsole } from "../../app/session";

export function JobPage() {
  const { principal } = useConsole();
  const { id } = useParams();
  return (
    <main className="p-6">
      <h1 className="text-xl font-semibold">Job {id}</h1>
      <p className="text-sm text-slate-600 dark:text-slate-400">Tenant {principal.tenant}.</p>
    </main>
  );
}
