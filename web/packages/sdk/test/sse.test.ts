// The SDK's stream reader against a scripted SSE server (node:http): what the real stack cannot be made to do on
// demand — `resync`, an expired credential, a refused connection — is answered here, one connection at a time.

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { ProblemError, Xrunner, type StreamStatus } from "@xrunner/sdk";

type Script = (request: IncomingMessage, response: ServerResponse, connection: number) => void;

async function serve(script: Script): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    requests.push(`${request.url} auth=${request.headers.authorization ?? ""}`);
    script(request, response, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const event = (id: number, job = "j1"): string =>
  `id: ${id}\r\nevent: queued\r\ndata: {"type":"job.queued.v1","job_id":"${job}","tenant":"t","event_id":"e${id}",` +
  `"occurred_at":"2026-01-01T00:00:00Z","pool":"default"}\r\n\r\n`;

function sse(response: ServerResponse, body: string, end = true): void {
  response.writeHead(200, { "Content-Type": "text/event-stream" });
  response.write(body);
  if (end) response.end();
}

const client = (url: string): Xrunner => new Xrunner({ gatewayUrl: url, token: "tok", maxBackoffMs: 50 });

test("resync and an expired credential reopen the stream from the last event seen", async () => {
  const server = await serve((_, response, connection) => {
    if (connection === 1) sse(response, event(1) + event(2) + "event: resync\r\nid: 2\r\ndata: behind\r\n\r\n");
    else if (connection === 2) {
      sse(response, event(2) + event(3) + `id: 4\r\nevent: expired\r\ndata: {"type":"job.expired.v1"}\r\n\r\n` +
        "event: expired\r\ndata: your credential expired\r\n\r\n");
    }
    else sse(response, event(5), false);
  });
  const statuses: StreamStatus[] = [];
  const ids: number[] = [];
  for await (const item of client(server.url).events({ since: 0, onStatus: (s) => statuses.push(s) })) {
    ids.push(item.id);
    if (item.id === 5) break;
  }
  await server.close();
  assert.deepEqual(ids, [1, 2, 3, 4, 5]); // 2 came again after the resync: delivered once; 4 is a job's `expired`
  assert.deepEqual(server.requests.map((r) => new URL(r.split(" ")[0] ?? "", server.url).searchParams.get("since")),
    ["0", "2", "4"]);
  assert.ok(server.requests.every((r) => r.endsWith("auth=Bearer tok")));
  assert.ok(statuses.some((s) => s.state === "resync"));
});

test("a stream that drops before its first event resumes from the position the edge announced", async () => {
  const server = await serve((_, response, connection) => {
    if (connection === 1) sse(response, "id: 41\r\nevent: position\r\ndata: 41\r\n\r\n");
    else sse(response, "id: 41\r\nevent: position\r\ndata: 41\r\n\r\n" + event(42), false);
  });
  const ids: number[] = [];
  for await (const item of client(server.url).events()) {
    ids.push(item.id);
    break;
  }
  await server.close();
  assert.deepEqual(ids, [42]);
  const query = (at: number): URLSearchParams => new URL(server.requests[at]?.split(" ")[0] ?? "", server.url).searchParams;
  assert.equal(query(0).get("since"), null);
  assert.equal(query(0).get("position"), "true");
  assert.equal(query(1).get("since"), "41");
});

test("a refused stream that can be retried waits Retry-After; one that cannot is thrown", async () => {
  const server = await serve((request, response, connection) => {
    if (connection === 1) {
      response.writeHead(429, { "Content-Type": "application/problem+json", "Retry-After": "0" });
      response.end(JSON.stringify({ type: "about:blank", title: "Too many", status: 429, code: "too_many_connections" }));
    } else if (request.url?.includes("logs")) {
      response.writeHead(404, { "Content-Type": "application/problem+json" });
      response.end(JSON.stringify({ type: "about:blank", title: "No such job", status: 404, code: "job_not_found" }));
    } else sse(response, event(7), false);
  });
  const xr = client(server.url);
  const statuses: StreamStatus[] = [];
  for await (const item of xr.events({ onStatus: (s) => statuses.push(s) })) {
    assert.equal(item.id, 7);
    break;
  }
  const reconnect = statuses.find((s) => s.state === "reconnecting");
  assert.ok(reconnect && reconnect.state === "reconnecting" && reconnect.error instanceof ProblemError);
  await assert.rejects(async () => {
    for await (const _ of xr.logs("nope")) assert.fail("a missing job has no output");
  }, (error: unknown) => error instanceof ProblemError && error.code === "job_not_found");
  await server.close();
});

test("logs resume from the byte offset of the last chunk and end with `end`", async () => {
  const server = await serve((request, response, connection) => {
    const offset = new URL(request.url ?? "", "http://x").searchParams.get("offset");
    if (connection === 1) {
      assert.equal(offset, "0");
      response.writeHead(200, { "Content-Type": "text/event-stream" });
      response.end("event: stdout\r\nid: 3\r\ndata: ab\r\ndata: \r\n\r\nevent: std"); // cut mid-message
    } else {
      assert.equal(offset, "3");
      sse(response, "event: stderr\r\nid: 5\r\ndata: c\r\ndata: \r\n\r\nevent: end\r\nid: 5\r\ndata: \r\n\r\n");
    }
  });
  const chunks = [];
  for await (const chunk of client(server.url).logs("j1")) chunks.push(chunk);
  await server.close();
  assert.deepEqual(chunks, [{ stream: "stdout", text: "ab\n", offset: 3 }, { stream: "stderr", text: "c\n", offset: 5 }]);
});

test("an aborted stream ends quietly", async () => {
  const server = await serve((_, response) => sse(response, event(1), false));
  const stop = new AbortController();
  const ids: number[] = [];
  for await (const item of client(server.url).events({ signal: stop.signal })) {
    ids.push(item.id);
    stop.abort();
  }
  await server.close();
  assert.deepEqual(ids, [1]);
});
