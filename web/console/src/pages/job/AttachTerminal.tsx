// Attach: a terminal on an interactive job through the SDK's attach(). Keys go to the job (raw on a tty, a line
// at a time with a local echo otherwise: nothing else echoes them), the window's size follows the box on a tty, and
// the end frame (final state and exit code) is shown when the job ends.

import { useEffect, useRef, useState } from "react";
import { ProblemError, type AttachEnd, type Attachment } from "@xrunner/sdk";
import { useConsole } from "../../app/session";
import { LineDiscipline } from "./output";
import { openTerminal, type LoadedTerminal } from "./terminal";

type Phase = { kind: "connecting" } | { kind: "attached" } | { kind: "ended"; end: AttachEnd | null; code: number } | { kind: "refused"; why: string };

export function AttachTerminal({ jobId, tty, onDetach }: { jobId: string; tty: boolean; onDetach: () => void }) {
  const { client } = useConsole();
  const host = useRef<HTMLDivElement>(null);
  const [phase, setPhase] = useState<Phase>({ kind: "connecting" });

  useEffect(() => {
    let stopped = false;
    let loaded: LoadedTerminal | null = null;
    let detach: (() => void) | null = null;
    async function start() {
      if (!host.current) return;
      loaded = await openTerminal(host.current, { input: true, label: "Terminal attached to the job" });
      const { term, fit } = loaded;
      let attachment: Attachment;
      try {
        attachment = await client.attach(jobId);
      } catch (e) {
        if (!stopped) setPhase({ kind: "refused", why: e instanceof ProblemError ? `${e.code}: ${e.problem.detail ?? e.message}` : String(e) });
        return;
      }
      if (stopped) {
        attachment.close();
        return;
      }
      detach = () => attachment.close();
      setPhase({ kind: "attached" });
      attachment.onOutput((bytes) => term.write(bytes));
      attachment.onError((detail) => term.write(`\r\n\x1b[31m[${detail}]\x1b[0m\r\n`));
      const line = new LineDiscipline();
      term.onData((data) => {
        if (tty) return attachment.send(data);
        const keyed = line.feed(data);
        if (keyed.echo) term.write(keyed.echo);
        if (keyed.send) attachment.send(keyed.send);
        if (keyed.eof) attachment.eof();
      });
      if (tty) {
        term.onResize(({ rows, cols }) => attachment.resize(rows, cols));
        fit.fit();
        attachment.resize(term.rows, term.cols);
      }
      term.focus();
      const end = await attachment.ended;
      const closed = await attachment.closed;
      if (!stopped) {
        term.options.disableStdin = true;
        term.options.cursorBlink = false;
        setPhase({ kind: "ended", end, code: closed.code });
      }
    }
    void start();
    return () => {
      stopped = true;
      detach?.();
      loaded?.dispose();
      if (host.current) host.current.replaceChildren();
    };
  }, [client, jobId, tty]);

  return (
    <section aria-labelledby="attach-title" className="space-y-2">
      <div className="flex items-center gap-3">
        <h2 id="attach-title" className="text-lg font-semibold">Terminal</h2>
        <span className="text-xs text-slate-500 dark:text-slate-400">{tty ? "tty: keys go to the job as typed" : "no tty: lines are sent on Enter, Ctrl-D ends input"}</span>
        <button type="button" onClick={onDetach} className="ml-auto rounded border border-slate-300 px-2 py-1 text-sm hover:bg-slate-100 dark:border-slate-600 dark:hover:bg-slate-800">
          {phase.kind === "ended" ? "Close" : "Detach"}
        </button>
      </div>
      <div ref={host} data-testid="attach-terminal" className="h-80 overflow-hidden rounded border border-slate-300 bg-slate-50 p-1 dark:border-slate-700 dark:bg-slate-900" />
      <AttachStatus phase={phase} />
    </section>
  );
}

function AttachStatus({ phase }: { phase: Phase }) {
  if (phase.kind === "connecting") return <p className="text-sm text-slate-600 dark:text-slate-400">Attaching…</p>;
  if (phase.kind === "attached") return <p data-testid="attach-status" className="text-sm text-emerald-700 dark:text-emerald-400">Attached.</p>;
  if (phase.kind === "refused") return <p role="alert" data-testid="attach-status" className="text-sm text-red-700 dark:text-red-400">Attach refused: {phase.why}</p>;
  const { end, code } = phase;
  return (
    <p role="status" data-testid="attach-end" className="text-sm font-medium">
      {end ? `The job ended: ${end.state.replace("_", " ")}${end.exit_code === null ? "" : ` (exit ${end.exit_code})`}.` : `The connection closed (code ${code}).`}
    </p>
  );
}
