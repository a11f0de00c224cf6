// The jobs list's state outside React: pages of jobs from the API, moved forward by live events, with changes
// batched into one render per animation frame (200 events/s must not mean 200 renders/s).

import type { JobEvent, JobView } from "@xrunner/sdk";
import { fold, submittedView, TERMINAL } from "../../app/fold";
import { matches, type Filters } from "./filters";

/** What the list renders; `jobs` and `changedAt` are the store's own maps (not copied per frame: with 10,000 jobs a
 * copy per frame would cost more than the render), so a new snapshot object with a new `version` marks a change. */
export interface Snapshot {
  version: number;
  ids: readonly string[];
  jobs: ReadonlyMap<string, JobView>;
  /** When each job last changed state from a live event (ms, performance clock): drives the chip's flash. */
  changedAt: ReadonlyMap<string, number>;
}

export class JobListStore {
  private ids: string[] = [];
  private readonly jobs = new Map<string, JobView>();
  private readonly changedAt = new Map<string, number>();
  private readonly touched = new Set<string>(); // changed by an event since the last page load began
  private readonly waiting = new Map<string, JobView>(); // new jobs not (yet) in a state the filter shows
  private snapshot: Snapshot = { version: 0, ids: [], jobs: this.jobs, changedAt: this.changedAt };
  private idsChanged = false;
  /** Jobs with events but no row: submitted just before the list was read, before the read model had them. */
  private readonly unknown = new Set<string>();
  private readonly looked = new Set<string>(); // each such job is fetched once
  private readonly listeners = new Set<() => void>();
  private frame = 0;

  constructor(private readonly filters: Filters) {}

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): Snapshot => this.snapshot;

  /** Adds a page from the API (older jobs at the end); what live events already moved is kept as they left it. */
  addPage(page: readonly JobView[]): void {
    for (const job of page) {
      if (this.jobs.has(job.id)) {
        if (!this.touched.has(job.id)) this.jobs.set(job.id, job);
        continue;
      }
      this.jobs.set(job.id, job);
      this.ids.push(job.id);
      this.idsChanged = true;
    }
    this.schedule();
  }

  /** Moves the list forward by one event: a new job (when it passes the filters) or a listed job's new state. */
  apply(event: JobEvent): void {
    if (event.type === "job.submitted.v1") {
      const view = submittedView(event);
      if (!this.jobs.has(view.id) && matches({ ...view, state: this.filters.states[0] ?? view.state }, this.filters))
        this.insertOrWait(view);
      return;
    }
    if (!("job_id" in event)) return;
    const pending = this.waiting.get(event.job_id);
    if (pending) {
      this.insertOrWait(fold(pending, event));
      return;
    }
    const before = this.jobs.get(event.job_id);
    if (!before) {
      if (!this.looked.has(event.job_id)) this.unknown.add(event.job_id);
      return;
    }
    const after = fold(before, event);
    if (after === before) return;
    this.jobs.set(after.id, after);
    this.touched.add(after.id);
    if (after.state !== before.state) this.changedAt.set(after.id, performance.now());
    this.schedule();
  }

  /** A job fetched because it had events but no row: placed by creation time, if it falls within the loaded
   * pages (an older one arrives with its page) and passes the filters. */
  take(limit: number): string[] {
    const ids = [...this.unknown].slice(0, limit);
    for (const id of ids) {
      this.unknown.delete(id);
      this.looked.add(id);
    }
    return ids;
  }

  place(job: JobView, events: readonly JobEvent[]): void {
    const view = events.reduce(fold, job);
    const oldest = this.jobs.get(this.ids[this.ids.length - 1] ?? "");
    if (this.jobs.has(view.id) || !matches(view, this.filters) || (oldest && view.created_at < oldest.created_at)) return;
    const at = this.ids.findIndex((id) => (this.jobs.get(id)?.created_at ?? "") < view.created_at);
    this.ids.splice(at < 0 ? this.ids.length : at, 0, view.id);
    this.jobs.set(view.id, view);
    this.idsChanged = true;
    this.schedule();
  }

  /** A new job goes on top once its state passes the filter; until then it is followed out of sight. */
  private insertOrWait(view: JobView): void {
    if (!matches(view, this.filters)) {
      if (TERMINAL.has(view.state)) this.waiting.delete(view.id);
      else this.waiting.set(view.id, view);
      return;
    }
    this.waiting.delete(view.id);
    this.jobs.set(view.id, view);
    this.ids.unshift(view.id);
    this.idsChanged = true;
    this.changedAt.set(view.id, performance.now());
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const ids = this.idsChanged ? [...this.ids] : this.snapshot.ids;
      this.idsChanged = false;
      this.snapshot = { version: this.snapshot.version + 1, ids, jobs: this.jobs, changedAt: this.changedAt };
      for (const fn of this.listeners) fn();
    });
  }
}
