// The job page's decisions without a browser: the timeline merge and summaries, the output cap, the line
// discipline of an attached terminal without a tty, and which viewer an artifact's preview gets.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ArtifactPreview, ArtifactView, HistoryEntry } from "@xrunner/sdk";
import { LineDiscipline, OutputBuffer } from "../../src/pages/job/output.js";
import { formatBytes, isJson, urlFresh, viewerFor } from "../../src/pages/job/previews.js";
import { fromHistory, label, merge, payloadText, sinceStart, summary, tone, type TimelineEntry } from "../../src/pages/job/timeline.js";

const entry = (seq: number, type: string, payload: Record<string, unknown> = {}): TimelineEntry =>
  ({ seq, type, at: `2026-01-01T00:00:0${seq}Z`, attempt: 1, payload: { type, ...payload } });

test("the timeline holds each sequence once, in order, whichever way it came", () => {
  const history = [entry(1, "job.submitted.v1"), entry(3, "job.started.v1")];
  const live = [entry(4, "job.succeeded.v1"), entry(3, "job.started.v1"), entry(2, "job.queued.v1")];
  assert.deepEqual(merge(history, live).map((e) => e.seq), [1, 2, 3, 4]);
  assert.deepEqual(merge(merge(history, live), live).map((e) => e.seq), [1, 2, 3, 4]);
});

test("a history entry keeps its sequence, time, attempt and payload", () => {
  const raw: HistoryEntry = { seq: 7, type: "job.queued.v1", occurred_at: "2026-01-01T00:00:00Z", attempt: 2, event: { pool: "gpu" } };
  assert.deepEqual(fromHistory(raw), { seq: 7, type: "job.queued.v1", at: raw.occurred_at, attempt: 2, payload: { pool: "gpu" } });
});

test("events read as what happened and why", () => {
  assert.equal(label("job.timed_out.v1"), "timed out");
  assert.equal(label("artifact.stored.v1"), "artifact stored");
  assert.equal(tone("job.failed.v1"), "bad");
  assert.equal(tone("job.succeeded.v1"), "ok");
  assert.equal(tone("job.cancel_requested.v1"), "warn");
  assert.equal(summary(entry(1, "job.started.v1", { worker_id: "w1", sandbox: "process" })), "worker w1 · sandbox process");
  assert.equal(summary(entry(1, "job.rejected.v1", { cause: "rate_limited" })), "rate_limited");
  assert.equal(summary(entry(1, "job.failed.v1", { exit_code: 3, reason: "exit status 3" })), "exit 3 · exit status 3");
  const shown = JSON.parse(payloadText(entry(1, "job.queued.v1", { pool: "default", job_id: "j", event_id: "e" }))) as object;
  assert.deepEqual(shown, { pool: "default" });
  assert.equal(sinceStart("2026-01-01T00:00:00Z", "2026-01-01T00:00:01.5Z"), "+1.50 s");
  assert.equal(sinceStart("2026-01-01T00:00:00Z", "2026-01-01T00:03:05Z"), "+3 min 5 s");
});

test("the output buffer keeps the newest text within its cap and says how much it dropped", () => {
  const buffer = new OutputBuffer(10);
  buffer.push("aaaa");
  buffer.push("bbbb");
  assert.equal(buffer.take(), "aaaabbbb");
  assert.equal(buffer.pending, false);
  buffer.push("x".repeat(6));
  buffer.push("y".repeat(6));
  const text = buffer.take();
  assert.match(text, /skipped/);
  assert.ok(text.endsWith("yyyyyy"), text);
  buffer.push("z".repeat(25));
  const cut = buffer.take();
  assert.ok(cut.endsWith("z".repeat(10)) && !cut.endsWith("z".repeat(11)), cut);
});

test("without a tty, keys are echoed and sent a line at a time; backspace edits; ^D on an empty line is eof", () => {
  const line = new LineDiscipline();
  assert.deepEqual(line.feed("echo hx"), { echo: "echo hx", send: "", eof: false });
  assert.deepEqual(line.feed("\x7fi\r"), { echo: "\b \bi\r\n", send: "echo hi\n", eof: false });
  assert.deepEqual(line.feed("\x04"), { echo: "", send: "", eof: true });
  assert.deepEqual(line.feed("ab\x15c\r"), { echo: "ab\b \b\b \bc\r\n", send: "c\n", eof: false });
  assert.deepEqual(line.feed("\x1b[A"), { echo: "[A", send: "", eof: false }); // an arrow key's ESC is not echoed
});

const artifact = (over: Partial<ArtifactView>): ArtifactView => ({
  id: "a1", job_id: "j1", attempt: 1, name: "out/data.json", size: 10, sha256: "0", content_type: "application/json",
  stored_at: "2026-01-01T00:00:00Z", expires_at: "2026-01-08T00:00:00Z", url: "http://x/v1/blobs/a1",
  url_expires_at: "2026-01-01T00:05:00Z", preview: null, ...over,
});

const preview = (over: Partial<ArtifactPreview> & Pick<ArtifactPreview, "kind">): ArtifactPreview =>
  ({ reason: "", truncated: false, ...over });

test("each preview kind gets its viewer; text waits for the full preview", () => {
  assert.deepEqual(viewerFor(artifact({}), null), { kind: "pending" });
  const listed = artifact({ preview: preview({ kind: "text", line_count: 3 }) });
  assert.deepEqual(viewerFor(listed, null), { kind: "pending" });
  assert.deepEqual(viewerFor(listed, preview({ kind: "text", text: "{}", line_count: 1 })),
    { kind: "text", json: true, text: "{}", lines: 1, truncated: false });
  assert.deepEqual(viewerFor(artifact({ preview: preview({ kind: "image", thumbnail_url: "http://t" }) }), null), { kind: "image", url: "http://t" });
  assert.deepEqual(viewerFor(artifact({ preview: preview({ kind: "pdf", thumbnail_url: "http://p", page_count: 12 }) }), null),
    { kind: "pdf", url: "http://p", pages: 12 });
  assert.deepEqual(viewerFor(artifact({ preview: preview({ kind: "archive" }) }), preview({ kind: "archive", entries: [{ name: "a", size: 1 }], truncated: true })),
    { kind: "archive", entries: [{ name: "a", size: 1 }], truncated: true });
  assert.deepEqual(viewerFor(artifact({ preview: preview({ kind: "none", reason: "too large" }) }), null), { kind: "none", reason: "too large" });
});

test("JSON is told by type or name; a URL about to expire is renewed; sizes read in binary units", () => {
  assert.ok(isJson({ name: "x.txt", content_type: "application/problem+json" }));
  assert.ok(isJson({ name: "x.JSON", content_type: "text/plain" }));
  assert.ok(!isJson({ name: "jsonish.txt", content_type: "text/plain" }));
  const expires = Date.parse("2026-01-01T00:05:00Z");
  assert.ok(urlFresh(artifact({}), expires - 60_000));
  assert.ok(!urlFresh(artifact({}), expires - 5_000));
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(300 * 1024 * 1024), "300 MiB");
});
