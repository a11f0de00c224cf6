// @xrunner/sdk against a real stack (tests/e2e/test_sdk_node.py starts one and runs these with node's test
// runner). Env: XR_GATEWAY_URL, XR_REALTIME_URL, XR_ARTIFACTS_URL, XR_TOKENS ({"tenant": "jwt", ...}).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ProblemError, Xrunner, type JobEvent, type JobSpec, type StreamEvent, type StreamStatus,
} from "@xrunner/sdk";

const TOKENS = JSON.parse(process.env["XR_TOKENS"] ?? "{}") as Record<string, string>;
const TERMINAL = new Set(["job.succeeded.v1", "job.failed.v1", "job.timed_out.v1", "job.cancelled.v1",
  "job.expired.v1", "job.rejected.v1"]);

function client(tenant: string, extra: Partial<ConstructorParameters<typeof Xrunner>[0]> = {}): Xrunner {
  const token = TOKENS[tenant];
  assert.ok(token, `no token for tenant ${tenant} in XR_TOKENS`);
  return new Xrunner({
    gatewayUrl: required("XR_GATEWAY_URL"),
    realtimeUrl: required("XR_REALTIME_URL"),
    artifactsUrl: required("XR_ARTIFACTS_URL"),
    token,
    maxBackoffMs: 500,
    ...extra,
  });
}

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
}

const echo = (text: string): JobSpec => ({ workload: { kind: "process", argv: ["echo", text] } });

/** A fetch whose SSE bodies break after every `every` events (whole ones: what a network failure between two
 * events does), so the SDK must reconnect and resume. */
function cuttingFetch(every: number, cuts: { count: number; positions?: number }): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const url = String(input instanceof Request ? input.url : input);
    if (!response.body || !url.includes("/v1/events") && !url.includes("/logs/stream")) return response;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let pending = "";
    let seen = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        pending += decoder.decode(value, { stream: true });
        for (let end = blockEnd(pending); end > 0; end = blockEnd(pending)) {
          const block = pending.slice(0, end);
          pending = pending.slice(end);
          controller.enqueue(encoder.encode(block));
          if (/^event: position/m.test(block)) {
            cuts.positions = (cuts.positions ?? 0) + 1; // the stream's starting point, not an event
          } else if (/^id: /m.test(block) && ++seen >= every) {
            cuts.count += 1;
            await reader.cancel();
            return controller.error(new TypeError("forced disconnect"));
          }
        }
      },
      cancel: () => reader.cancel(),
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

/** Where the first complete SSE message of `text` ends (after its blank line), or -1. */
function blockEnd(text: string): number {
  const found = /\r?\n\r?\n/.exec(text);
  return found ? found.index + found[0].length : -1;
}

async function untilTerminal(xr: Xrunner, ids: string[], since = 0, collected: StreamEvent[] = []):
    Promise<StreamEvent[]> {
  const open = new Set(ids);
  for await (const item of xr.events({ jobs: ids, since })) {
    collected.push(item);
    if (TERMINAL.has(item.event.type)) open.delete(item.event.job_id);
    if (!open.size) break;
  }
  return collected;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("submit, then its events arrive typed by tag up to the terminal one", async () => {
  const xr = client("sdk-events");
  const accepted = await xr.jobs.submit(echo("hello"));
  assert.ok(accepted.created);
  const events = await untilTerminal(xr, [accepted.job.id]);
  const types = events.map((item) => item.event.type);
  assert.deepEqual(types.filter((t) => t !== "job.dispatched.v1").slice(0, 2), ["job.submitted.v1", "job.queued.v1"]);
  assert.equal(types.at(-1), "job.succeeded.v1");
  const last = events.at(-1)?.event as JobEvent;
  assert.equal(last.type === "job.succeeded.v1" ? last.exit_code : -1, 0);
  const view = await xr.jobs.get(accepted.job.id);
  assert.equal(view.state, "succeeded");
});

test("events filtered by tag carry only those tags", async () => {
  const xr = client("sdk-events");
  const accepted = await xr.jobs.submit(echo("filtered"));
  const types = [];
  for await (const item of xr.events({ jobs: [accepted.job.id], types: ["job.queued.v1", "job.succeeded.v1"], since: 0 })) {
    types.push(item.event.type);
    if (item.event.type === "job.succeeded.v1") break;
  }
  assert.deepEqual(types, ["job.queued.v1", "job.succeeded.v1"]);
});

test("the same idempotency key submits once", async () => {
  const xr = client("sdk-events");
  const first = await xr.jobs.submit(echo("once"), { idempotencyKey: "sdk-once-key" });
  const again = await xr.jobs.submit(echo("once"), { idempotencyKey: "sdk-once-key" });
  assert.equal(again.job.id, first.job.id);
  assert.equal(again.created, false);
});

test("events resume after forced disconnects with exactly the missed events", async () => {
  const cuts = { count: 0 };
  const statuses: StreamStatus[] = [];
  const xr = client("sdk-resume", { fetch: cuttingFetch(2, cuts) });
  const plain = client("sdk-resume");
  const ids = [];
  for (const n of [1, 2, 3, 4]) ids.push((await plain.jobs.submit(echo(`job ${n}`))).job.id);
  const collected: StreamEvent[] = [];
  const open = new Set(ids);
  for await (const item of xr.events({ jobs: ids, since: 0, onStatus: (s) => statuses.push(s) })) {
    collected.push(item);
    if (TERMINAL.has(item.event.type)) open.delete(item.event.job_id);
    if (!open.size) break;
  }
  assert.ok(cuts.count >= 3, `the stream was cut ${cuts.count} times`);
  assert.ok(statuses.some((s) => s.state === "reconnecting"));
  const got = collected.map((item) => item.id);
  const last = Math.max(...got);
  const histories = await Promise.all(ids.map((id) => plain.jobs.history(id)));
  const expected = histories.flat().map((entry) => entry.seq).filter((seq) => seq <= last).sort((a, b) => a - b);
  assert.deepEqual(got, expected);
});

test("a live stream (no `since`) cut after every event loses nothing", async () => {
  const cuts: { count: number; positions?: number } = { count: 0 };
  const xr = client("sdk-live", { fetch: cuttingFetch(1, cuts) });
  const plain = client("sdk-live");
  const collected: StreamEvent[] = [];
  const stop = new AbortController();
  let jobId = "";
  const reading = (async () => {
    for await (const item of xr.events({ signal: stop.signal })) {
      collected.push(item);
      if (item.event.job_id === jobId && TERMINAL.has(item.event.type)) return;
    }
  })();
  // once the first connection announced its position, what happens next reaches the stream
  await eventually("the stream's position", async () => ((cuts.positions ?? 0) >= 1 ? true : undefined));
  jobId = (await plain.jobs.submit(echo("live"))).job.id;
  await reading;
  stop.abort();
  const history = (await plain.jobs.history(jobId)).map((entry) => entry.seq);
  const got = collected.map((item) => item.id);
  assert.deepEqual(got, history.filter((seq) => seq <= Math.max(...got)));
  assert.equal(cuts.count, got.length);
  assert.ok((cuts.positions ?? 0) >= got.length, "each connection announced its position");
});

test("events over a one-time stream ticket (the browsers' way)", async () => {
  const xr = client("sdk-events", { streamAuth: "ticket" });
  const accepted = await xr.jobs.submit(echo("ticketed"));
  const events = await untilTerminal(xr, [accepted.job.id]);
  assert.equal(events.at(-1)?.event.type, "job.succeeded.v1");
});

test("logs follow a job's output and resume by byte offset", async () => {
  const xr = client("sdk-logs");
  const script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done";
  const accepted = await xr.jobs.submit({ workload: { kind: "process", argv: ["sh", "-c", script] } });
  const want = "line1\nline2\nline3\nline4\nline5\n";
  let whole = "";
  const offsets: number[] = [];
  for await (const chunk of xr.logs(accepted.job.id)) {
    whole += chunk.text;
    offsets.push(chunk.offset);
  }
  assert.equal(whole, want);
  const cuts = { count: 0 };
  const cutting = client("sdk-logs", { fetch: cuttingFetch(1, cuts) });
  let resumed = "";
  for await (const chunk of cutting.logs(accepted.job.id, { offset: 6 })) resumed += chunk.text;
  assert.equal(resumed, want.slice(6));
  const read = await xr.jobs.log(accepted.job.id, { offset: 12 });
  assert.equal(read.text, want.slice(12));
  assert.equal(read.complete, true);
});

test("attach: type into an interactive sh, see its answer, exit ends it with the end frame", async () => {
  const xr = client("sdk-attach");
  const accepted = await xr.jobs.submit({ workload: { kind: "process", argv: ["sh"], interactive: true } });
  const term = await xr.attach(accepted.job.id);
  let output = "";
  const decoder = new TextDecoder();
  term.onOutput((bytes) => (output += decoder.decode(bytes, { stream: true })));
  term.send("echo hi\n");
  await eventually("hi", async () => (output.includes("hi\n") ? true : undefined));
  term.send("exit 3\n");
  assert.deepEqual(await term.ended, { state: "failed", exit_code: 3 });
  assert.equal((await term.closed).code, 1000);
});

test("attach over a stream ticket to a job that is not interactive is refused with its status", async () => {
  const xr = client("sdk-attach", { streamAuth: "ticket" });
  const accepted = await xr.jobs.submit(echo("plain"));
  await assert.rejects(xr.attach(accepted.job.id), (error: unknown) =>
    error instanceof ProblemError && error.status === 409);
});

test("a 400 names the field at fault", async () => {
  const xr = client("sdk-errors");
  const bad = { workload: { kind: "process", argv: "not a list" } } as unknown as JobSpec;
  const error = await xr.jobs.submit(bad).then(() => assert.fail("accepted a bad spec"), (e: unknown) => e);
  assert.ok(error instanceof ProblemError);
  assert.equal(error.status, 400);
  assert.match(error.field ?? "", /argv/);
});

test("a tenant at its queue limit gets a 429 with retry_after_s", async () => {
  const admin = client("sdk-admin");
  await admin.tenants.configure("sdk-limited", { max_queued: 0, max_inflight: 0 });
  const xr = client("sdk-limited");
  const refusal = await eventually("a 429", async () => {
    try {
      await xr.jobs.submit(echo("over the limit"));
      return undefined;
    } catch (error) {
      if (error instanceof ProblemError && error.status === 429) return error;
      throw error;
    }
  });
  assert.ok((refusal.retryAfterS ?? 0) > 0, `retry_after_s: ${refusal.retryAfterS}`);
  assert.ok(refusal.code);
});

test("pages follow the cursor; another tenant's job is not found", async () => {
  const xr = client("sdk-pages");
  const run = `run-${Date.now()}`;
  const ids = new Set<string>();
  for (const n of [1, 2, 3]) ids.add((await xr.jobs.submit({ ...echo(`page ${n}`), labels: { run } })).job.id);
  const label = [`run=${run}`];
  await eventually("the read model to list the jobs", async () =>
    (await xr.jobs.list({ label })).jobs.length === ids.size ? true : undefined);
  const seen: string[] = [];
  let pages = 0;
  for await (const page of xr.jobs.pages({ limit: 1, label })) {
    pages += 1;
    assert.ok(page.jobs.length <= 1);
    seen.push(...page.jobs.map((job) => job.id));
  }
  assert.ok(pages >= 3, `${pages} pages`);
  assert.equal(seen.length, ids.size);
  assert.deepEqual(new Set(seen), ids);
  const other = client("sdk-events");
  await assert.rejects(other.jobs.get([...ids][0] as string), (error: unknown) =>
    error instanceof ProblemError && error.status === 404 && error.code === "job_not_found");
  await assert.rejects(other.artifacts.list([...ids][0] as string), (error: unknown) =>
    error instanceof ProblemError && error.status === 404);
  const first = [...ids][0] as string;
  for (const artifact of await xr.artifacts.list(first)) {
    assert.equal(artifact.job_id, first);
    assert.match(artifact.url, /^http/);
  }
});

test("the rest of the REST surface: whoami, stats, dry run, batch, explain, cancel, rerun, history", async () => {
  const xr = client("sdk-rest");
  assert.equal((await xr.whoami()).tenant, "sdk-rest");
  assert.ok(Array.isArray((await xr.stats()).pools));
  assert.equal((await xr.jobs.dryRun(echo("dry"))).decision, "admitted");
  const batch = await xr.jobs.batch([echo("one"), echo("two")]);
  assert.deepEqual(batch.results.map((item) => item.index), [0, 1]);
  assert.ok(batch.results.every((item) => item.job?.id && !item.problem));
  const { job } = await xr.jobs.submit({ workload: { kind: "process", argv: ["sleep", "60"] } });
  const why = await xr.jobs.explain(job.id);
  assert.equal(why.job_id, job.id);
  assert.ok(why.reason);
  await xr.jobs.cancel(job.id, "the test is done with it");
  const cancelled = await eventually("the job to be cancelled", async () => {
    const view = await xr.jobs.get(job.id);
    return view.state === "cancelled" ? view : undefined;
  });
  assert.equal(cancelled.id, job.id);
  await assert.rejects(xr.jobs.cancel(job.id), (error: unknown) =>
    error instanceof ProblemError && error.status === 409 && error.code === "job_finished");
  const rerun = await xr.jobs.rerun(job.id);
  assert.notEqual(rerun.job.id, job.id);
  await xr.jobs.cancel(rerun.job.id);
  const history = await xr.jobs.history(job.id);
  assert.equal(history[0]?.type, "job.submitted.v1");
  assert.ok(history.some((entry) => entry.type === "job.cancelled.v1"));
});

test("artifacts: list, one with a fresh signed URL, its preview, the download", async () => {
  const xr = client("sdk-rest");
  const { job } = await xr.jobs.submit({
    workload: { kind: "process", argv: ["sh", "-c", "mkdir -p out && echo '{\"a\": 1}' > out/data.json"] },
  });
  const listed = await eventually("the job's artifact", async () => {
    const found = (await xr.artifacts.list(job.id)).find((artifact) => artifact.name.endsWith("data.json"));
    return found;
  });
  const one = await xr.artifacts.get(listed.id);
  assert.equal(one.id, listed.id);
  const download = await fetch(one.url);
  assert.equal(download.status, 200);
  assert.deepEqual(await download.json(), { a: 1 });
  const preview = await eventually("the preview", async () => {
    try {
      return await xr.artifacts.preview(listed.id);
    } catch (error) {
      if (error instanceof ProblemError && error.code === "preview_pending") return undefined;
      throw error;
    }
  });
  assert.equal(preview.kind, "text");
});
