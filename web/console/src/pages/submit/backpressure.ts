// Whether the tenant can take another job now: its queue and in-flight counts against its limits, and the wait a
// 429 asked for. /v1/stats has no stream: it is read soon after job events arrive (at most once a second) and every
// few seconds while the tab is visible (the scheduler publishes it periodically, and limit changes carry no event).

import { useCallback, useEffect, useRef, useState } from "react";
import { useConsole } from "../../app/session";

const MIN_GAP_MS = 1000;
const IDLE_REFRESH_MS = 3000;

export interface Pressure {
  /** Why submitting is off right now, or null. */
  reason: string | null;
  /** Seconds until a 429's Retry-After has passed (0: none pending). */
  retryIn: number;
  /** Record a 429: submitting stays off for `seconds`. */
  throttled(seconds: number, why: string): void;
}

export function useBackpressure(): Pressure {
  const { client, live, principal } = useConsole();
  const [limitReason, setLimitReason] = useState<string | null>(null);
  const [retry, setRetry] = useState<{ until: number; why: string } | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const last = useRef(0);
  const timer = useRef<number | undefined>(undefined);

  const read = useCallback(async () => {
    last.current = Date.now();
    try {
      const stats = await client.stats();
      const mine = stats.tenants.find((t) => t.tenant === principal.tenant);
      const inflight = mine ? mine.running + mine.dispatched : 0;
      setLimitReason(mine ? limitOf(mine.queued, inflight, mine.limits.max_queued, mine.limits.max_inflight) : null);
    } catch {
      // stats unavailable: no cue rather than a wrong one; a 429 still shows
    }
  }, [client, principal.tenant]);

  useEffect(() => {
    void read();
    const soon = () => {
      if (timer.current !== undefined) return;
      const wait = Math.max(0, last.current + MIN_GAP_MS - Date.now());
      timer.current = window.setTimeout(() => { timer.current = undefined; void read(); }, wait);
    };
    const off = live.subscribe(soon);
    const idle = window.setInterval(() => document.visibilityState === "visible" && soon(), IDLE_REFRESH_MS);
    return () => { off(); window.clearInterval(idle); window.clearTimeout(timer.current); timer.current = undefined; };
  }, [live, read]);

  useEffect(() => {
    if (!retry) return;
    const tick = window.setInterval(() => setNow(Date.now()), 250);
    return () => window.clearInterval(tick);
  }, [retry]);

  const retryIn = retry ? Math.max(0, Math.ceil((retry.until - now) / 1000)) : 0;
  const throttled = useCallback((seconds: number, why: string) => {
    setNow(Date.now());
    setRetry({ until: Date.now() + seconds * 1000, why });
  }, []);
  const reason = retryIn > 0 && retry ? `${retry.why} Retry in ${retryIn} s.` : limitReason;
  return { reason, retryIn, throttled };
}

export function limitOf(queued: number, inflight: number, maxQueued: number, maxInflight: number): string | null {
  if (queued >= maxQueued) return `Your tenant's queue is full (${queued} of ${maxQueued} queued).`;
  if (inflight >= maxInflight) return `Your tenant is at its in-flight limit (${inflight} of ${maxInflight} running).`;
  return null;
}
