// Submit a job: process or docker workloads, templates, field errors, backpressure cues.

export function SubmitPage() {
  return (
    <main className="p-6">
      <h1 className="text-xl font-semibold">Submit a job</h1>
    </main>
  );
}
