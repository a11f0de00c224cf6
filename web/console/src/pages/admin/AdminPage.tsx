// Placeholder owned by the jobview helper: replaced by the real Admin page.

import { useConsole } from "../../app/session";

export function AdminPage() {
  const { principal } = useConsole();
  return (
    <main className="p-6">
      <h1 className="text-xl font-semibold">Admin</h1>
      <p className="text-sm text-slate-600 dark:text-slate-400">Tenant {principal.tenant}.</p>
    </main>
  );
}
