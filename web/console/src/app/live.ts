// The tab's one stream of the tenant's job events (browsers allow 6 connections per host): started with the
// session, shared by every page through useConsole().live; pages subscribe and are called for each event.

import type { JobEvent, StreamStatus, Xrunner } from "@xrunner/sdk";

export type Listener = (event: JobEvent, id: number) => void;

const BACKLOG = 2000; // recent events kept for views that learn of a job after its first events (a submit's answer)

export class LiveEvents {
  private readonly listeners = new Set<Listener>();
  private readonly statusListeners = new Set<(s: StreamStatus) => void>();
  private readonly abort = new AbortController();
  private backlog: JobEvent[] = [];
  status: StreamStatus = { state: "connecting", resumeFrom: null };

  constructor(private readonly client: Xrunner) {}

  /** Reads the stream until stop(); the SDK reconnects and resumes by itself. */
  async start(): Promise<void> {
    const onStatus = (s: StreamStatus) => {
      this.status = s;
      for (const fn of this.statusListeners) fn(s);
    };
    try {
      for await (const item of this.client.events({ signal: this.abort.signal, onStatus })) {
        this.backlog.push(item.event);
        if (this.backlog.length > 2 * BACKLOG) this.backlog = this.backlog.slice(-BACKLOG);
        for (const fn of this.listeners) fn(item.event, item.id);
      }
    } catch (e) {
      if (!this.abort.signal.aborted) console.warn("job events stopped", e);
    }
  }

  stop(): void {
    this.abort.abort();
  }

  /** The job's events seen lately, oldest first: what arrived before its view did (fold them over it). */
  eventsOf(jobId: string): JobEvent[] {
    return this.backlog.filter((e) => "job_id" in e && e.job_id === jobId);
  }

  /** Calls `fn` with every event from now on; returns the unsubscribe function. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onStatus(fn: (s: StreamStatus) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }
}
