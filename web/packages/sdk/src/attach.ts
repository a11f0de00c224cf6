// Attach: a terminal on an interactive job over the realtime edge's WebSocket (services/realtime/.../attach.py).
// Client → server: binary frames are raw input; text frames are JSON controls (`input`, `resize`, `eof`). Server →
// client: binary frames are the job's raw output; one text frame `{"type":"end",...}` when the job ends, then
// close 1000; `{"type":"error",...}` for a bad control; close 4401 when the credential expires.

import { ProblemError } from "./errors.js";
import type { JobState } from "./types.js";

/** The frame the edge sends when the job ends. */
export interface AttachEnd {
  state: JobState;
  exit_code: number | null;
}

export interface AttachClose {
  code: number;
  reason: string;
}

/** Close codes the edge uses. */
export const CLOSE = { ended: 1000, serverError: 1011, expired: 4401 } as const;

type Listener<T> = (value: T) => void;

export class Attachment {
  /** The job's end (its final state and exit code), or null when the connection closed without it. */
  readonly ended: Promise<AttachEnd | null>;
  /** How the connection closed. */
  readonly closed: Promise<AttachClose>;
  private readonly outputListeners = new Set<Listener<Uint8Array>>();
  private readonly errorListeners = new Set<Listener<string>>();
  private readonly pending: Uint8Array[] = [];
  private readonly encoder = new TextEncoder();

  constructor(private readonly socket: WebSocket) {
    let end: AttachEnd | null = null;
    let settleEnded: (end: AttachEnd | null) => void = () => undefined;
    this.ended = new Promise((resolve) => (settleEnded = resolve));
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        settleEnded(end);
        resolve({ code: event.code, reason: event.reason });
      });
    });
    socket.addEventListener("message", (event) => {
      const data: unknown = event.data;
      if (typeof data === "string") {
        const frame = JSON.parse(data) as { type: string; detail?: string } & Partial<AttachEnd>;
        if (frame.type === "end") {
          end = { state: frame.state as JobState, exit_code: frame.exit_code ?? null };
          settleEnded(end);
        } else if (frame.type === "error") {
          for (const listener of this.errorListeners) listener(frame.detail ?? "");
        }
        return;
      }
      this.output(toBytes(data));
    });
  }

  /** Receive the job's raw output (what arrived before the first listener is replayed to it). */
  onOutput(listener: Listener<Uint8Array>): () => void {
    this.outputListeners.add(listener);
    for (const bytes of this.pending.splice(0)) listener(bytes);
    return () => this.outputListeners.delete(listener);
  }

  /** Receive the edge's complaints about a bad control message. */
  onError(listener: Listener<string>): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** Type into the job: text is sent as UTF-8, bytes as they are. */
  send(data: string | Uint8Array): void {
    this.socket.send(typeof data === "string" ? this.encoder.encode(data) : data);
  }

  /** A tty job's terminal size. */
  resize(rows: number, cols: number): void {
    this.socket.send(JSON.stringify({ type: "resize", rows, cols }));
  }

  /** End the job's stdin (a tty gets ^D). */
  eof(): void {
    this.socket.send(JSON.stringify({ type: "eof" }));
  }

  /** Detach (the job goes on). */
  close(code = 1000, reason = "detached"): void {
    this.socket.close(code, reason);
  }

  private output(bytes: Uint8Array): void {
    if (!this.outputListeners.size) {
      this.pending.push(bytes);
      return;
    }
    for (const listener of this.outputListeners) listener(bytes);
  }
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    // ws may deliver fragments as Buffer[]
    const parts = data as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.byteLength;
    }
    return out;
  }
  return new Uint8Array();
}

/** Wait for `socket` to open; a refused handshake becomes a ProblemError (the edge closes with 4000 + status and
 * the problem's code when it cannot answer the handshake itself; `ws` reports the HTTP status in its error). */
export function opened(socket: WebSocket): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let error = "";
    const onOpen = (): void => {
      socket.removeEventListener("close", onClose);
      socket.removeEventListener("error", onError);
      resolve(socket);
    };
    const onError = (event: Event): void => {
      error = (event as Event & { message?: string }).message ?? "";
    };
    const onClose = (event: CloseEvent): void => {
      socket.removeEventListener("open", onOpen);
      const status = event.code >= 4000 && event.code < 5000 ? event.code - 4000 : Number(/\b(\d{3})\b/.exec(error)?.[1] ?? 0);
      const code = event.code >= 4000 ? event.reason || `http_${status}` : `http_${status || "error"}`;
      reject(new ProblemError({
        type: "about:blank", title: "The attach was refused", status: status || 502, code,
        detail: error || event.reason || null,
      }));
    };
    socket.addEventListener("open", onOpen, { once: true });
    socket.addEventListener("error", onError);
    socket.addEventListener("close", onClose, { once: true });
  });
}
