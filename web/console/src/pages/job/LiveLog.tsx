// The job's output, live, in a read-only terminal: the SDK's logs() resumes by byte offset after a dropped
// connection, so nothing is lost or repeated; text is gathered per animation frame and capped (output.ts).

import { useEffect, useRef, useState } from "react";
import { useConsole } from "../../app/session";
import { OutputBuffer } from "./output";
import { openTerminal, type LoadedTerminal } from "./terminal";

type Status = "loading" | "live" | "reconnecting" | "ended" | "failed";

export function LiveLog({ jobId, attempt }: { jobId: string; attempt: number }) {
  const { client } = useConsole();
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>("loading");
  const [bytes, setBytes] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    const buffer = new OutputBuffer();
    let loaded: LoadedTerminal | null = null;
    let frame = 0;
    const flush = () => {
      frame = 0;
      if (loaded && buffer.pending) loaded.term.write(buffer.take());
    };
    const schedule = () => {
      if (frame === 0) frame = requestAnimationFrame(flush);
    };
    async function follow() {
      if (!host.current) return;
      loaded = await openTerminal(host.current, { input: false, label: "Job output" });
      if (abort.signal.aborted) return;
      setStatus("live");
      try {
        const onStatus = (s: { state: string }) => setStatus(s.state === "reconnecting" ? "reconnecting" : "live");
        for await (const chunk of client.logs(jobId, { signal: abort.signal, onStatus })) {
          buffer.push(chunk.text);
          setBytes(chunk.offset);
          schedule();
        }
        if (!abort.signal.aborted) setStatus("ended");
      } catch (e) {
        if (!abort.signal.aborted) {
          console.warn("job output stopped", e);
          setStatus("failed");
        }
      }
    }
    void follow();
    return () => {
      abort.abort();
      if (frame) cancelAnimationFrame(frame);
      loaded?.dispose();
      if (host.current) host.current.replaceChildren();
    };
  }, [client, jobId, attempt]);

  return (
    <section aria-labelledby="output-title" className="space-y-2">
      <div className="flex items-baseline gap-3">
        <h2 id="output-title" className="text-lg font-semibold">Output</h2>
        <span data-testid="log-status" className="text-xs text-slate-500 dark:text-slate-400">
          {statusText(status, bytes)}
        </span>
      </div>
      <div ref={host} data-testid="live-log" className="h-80 overflow-hidden rounded border border-slate-300 bg-slate-50 p-1 dark:border-slate-700 dark:bg-slate-900" />
    </section>
  );
}

function statusText(status: Status, bytes: number): string {
  if (bytes === 0 && status === "live") return "waiting for output · 0 bytes";
  if (bytes === 0 && status === "ended") return "ended · the job printed nothing";
  return `${STATUS_TEXT[status]} · ${bytes.toLocaleString()} bytes`;
}

const STATUS_TEXT: Record<Status, string> = {
  loading: "connecting…",
  live: "live",
  reconnecting: "reconnecting (resumes where it left off)",
  ended: "ended",
  failed: "stopped (reload to retry)",
};
