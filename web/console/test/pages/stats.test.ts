// The stats page's series and meters, and the admin form's parsing, without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { StatsView } from "@xrunner/sdk";
import { fieldOf, parse, valuesOf } from "../../src/pages/admin/tenantForm.js";
import { emptyHistory, fill, level, readings, record, sparkline } from "../../src/pages/stats/series.js";

const limits = { weight: 1, max_inflight: 4, max_queued: 10, submit_rate_per_s: 5, artifact_ttl_s: 60, configured: true };
const tenant = (name: string, p99: number | null) => ({
  tenant: name, limits, queued: 1, dispatched: 1, running: 2, oldest_wait_s: 4, dominant_share: 0.5, recent_usage: 1,
  dispatch_p50_ms: p99 === null ? null : p99 / 2, dispatch_p99_ms: p99, rate_tokens: 1, head: [],
});
const snapshot = (at: string | null, running: number, extra: object = {}): StatsView => ({
  at, running_total: running, queued_total: 3, dispatched_total: 0, tenants: [tenant("a", 8), tenant("b", null)],
  pools: [{ pool: "default", workers: 1, slots: 4, free_slots: 1, dispatched: 0, running: 3, queued: 3, oldest_wait_s: 6,
    cpu_millis: 2000, memory_mib: 1024, gpu: 0 }], ...extra,
}) as unknown as StatsView;

test("a snapshot's readings: totals, the oldest wait anywhere, the scheduler's latency or else the worst tenant's", () => {
  assert.deepEqual(readings(snapshot("t", 3)), { running: 3, queued: 3, oldest_wait_s: 6, dispatch_p50_ms: 4, dispatch_p99_ms: 8 });
  const global = readings(snapshot("t", 3, { dispatch_p50_ms: 1, dispatch_p99_ms: null }));
  assert.equal(global.dispatch_p50_ms, 1);
  assert.equal(global.dispatch_p99_ms, null);
});

test("each new snapshot adds one point, a repeated one none, and the window keeps the newest", () => {
  let history = emptyHistory();
  history = record(history, snapshot("t1", 1), 2);
  history = record(history, snapshot("t1", 9), 2);
  history = record(history, snapshot(null, 9), 2);
  assert.deepEqual(history.series.running, [1]);
  history = record(history, snapshot("t2", 2), 2);
  history = record(history, snapshot("t3", 3), 2);
  assert.deepEqual(history.series.running, [2, 3]);
});

test("a sparkline spans its box, scaled to the largest value, with a gap for a missing one", () => {
  assert.equal(sparkline([], 100, 10), "");
  assert.equal(sparkline([0, 5, 10], 100, 10), "M0.0,10.0L50.0,5.0L100.0,0.0");
  assert.equal(sparkline([10, null, 10], 100, 10), "M0.0,0.0M100.0,0.0");
});

test("meters fill against their limit and warn near it", () => {
  assert.equal(fill(2, 4), 0.5);
  assert.equal(fill(9, 4), 1);
  assert.equal(fill(1, 0), 1);
  assert.equal(fill(0, 0), 0);
  assert.deepEqual([level(0.5), level(0.8), level(1)], ["ok", "warn", "full"]);
});

test("the tenant form gives the API's body, or what is wrong with each field", () => {
  const values = valuesOf(limits);
  assert.deepEqual(parse(values), { ok: true, body: { weight: 1, max_inflight: 4, max_queued: 10, submit_rate_per_s: 5, artifact_ttl_s: 60 } });
  const bad = parse({ ...values, weight: "0", max_inflight: "1.5", max_queued: "", artifact_ttl_s: "1e12" });
  assert.deepEqual(bad, { ok: false, errors: {
    weight: "must be more than 0", max_inflight: "must be a whole number", max_queued: "must be a number",
    artifact_ttl_s: "must be at most 315,360,000",
  } });
  assert.equal(fieldOf("$.weight"), "weight");
  assert.equal(fieldOf("body.max_queued"), "max_queued");
  assert.equal(fieldOf("tenant"), null);
  assert.equal(fieldOf(null), null);
});
